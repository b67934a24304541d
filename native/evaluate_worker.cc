#include "evaluate_worker.h"

namespace morec {

EvaluateWorker::EvaluateWorker(Napi::Env env, std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                               EvalOptions options, Napi::Function onProgress)
    : PromiseWorker(env, "morec.evaluate", std::move(core), onProgress), seqs_(std::move(seqs)), options_(options) {}

void EvaluateWorker::run(const Progress& progress) {
  ranks_ = Evaluator::ranks(*core_->model, *seqs_, options_, [&](int64_t done, int64_t total) {
    EvalProgressMessage m{done, total};
    progress.Send(&m, 1);
  });
  releaseFreeMemory();
}

std::vector<napi_value> EvaluateWorker::progressArgs(Napi::Env env, const EvalProgressMessage& m) {
  return {Napi::Number::New(env, double(m.done)), Napi::Number::New(env, double(m.total))};
}

Napi::Value EvaluateWorker::result(Napi::Env env) {
  auto ranks = torch::from_blob(ranks_.data(), {int64_t(ranks_.size())}, torch::kInt).clone();
  return tensorToTypedArray(env, ranks);
}

}  // namespace morec
