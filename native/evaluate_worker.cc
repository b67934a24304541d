#include "evaluate_worker.h"

namespace morec {

EvaluateWorker::EvaluateWorker(std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                               EvalOptions options)
    : PromiseWorker("morec.evaluate", std::move(core)), seqs_(std::move(seqs)), options_(options) {}

void EvaluateWorker::run() {
  ranks_ = Evaluator::ranks(
      *core_->model, *seqs_, options_, [&](int64_t done, int64_t total) { report({done, total}); }, core_->cancel, core_->group);
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
