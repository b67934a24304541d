#include "evaluate_worker.h"

namespace morec {

EvaluateWorker::EvaluateWorker(Napi::Env env, std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                               EvalOptions options, Napi::Function onProgress)
    : Napi::AsyncProgressWorker<EvalProgressMessage>(env, "morec.evaluate"),
      deferred_(Napi::Promise::Deferred::New(env)),
      core_(std::move(core)),
      seqs_(std::move(seqs)),
      options_(options) {
  if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  core_->busy = true;
}

void EvaluateWorker::Execute(const ExecutionProgress& progress) {
  try {
    ranks_ = Evaluator::ranks(*core_->model, *seqs_, options_, [&](int64_t done, int64_t total) {
      EvalProgressMessage m{done, total};
      progress.Send(&m, 1);
    });
  } catch (...) {
    describeCurrentException(errorCode_, errorMessage_);
    SetError(errorMessage_);
  }
}

void EvaluateWorker::OnProgress(const EvalProgressMessage* data, size_t count) {
  if (onProgress_.IsEmpty() || count == 0) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  try {
    onProgress_.Call({Napi::Number::New(env, double(data[count - 1].done)),
                      Napi::Number::New(env, double(data[count - 1].total))});
  } catch (const Napi::Error&) {
    onProgress_.Reset();
  }
}

void EvaluateWorker::OnOK() {
  core_->busy = false;
  auto ranks = torch::from_blob(ranks_.data(), {int64_t(ranks_.size())}, torch::kInt).clone();
  deferred_.Resolve(tensorToTypedArray(Env(), ranks));
}

void EvaluateWorker::OnError(const Napi::Error&) {
  core_->busy = false;
  deferred_.Reject(makeError(Env(), errorCode_, errorMessage_).Value());
}

}  // namespace morec
