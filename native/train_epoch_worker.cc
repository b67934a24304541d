#include "train_epoch_worker.h"

namespace morec {

TrainEpochWorker::TrainEpochWorker(Napi::Env env, std::shared_ptr<ModelCore> core,
                                   std::shared_ptr<const SequenceData> seqs, EpochOptions options,
                                   Napi::Function onProgress)
    : Napi::AsyncProgressWorker<EpochProgressMessage>(env, "morec.trainEpoch"),
      deferred_(Napi::Promise::Deferred::New(env)),
      core_(std::move(core)),
      seqs_(std::move(seqs)),
      options_(options) {
  if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  core_->busy = true;
}

void TrainEpochWorker::Execute(const ExecutionProgress& progress) {
  try {
    result_ = core_->trainer->runEpoch(*seqs_, options_, [&](int64_t done, int64_t total, double loss) {
      EpochProgressMessage m{done, total, loss};
      progress.Send(&m, 1);
    });
  } catch (...) {
    describeCurrentException(errorCode_, errorMessage_);
    SetError(errorMessage_);
  }
}

void TrainEpochWorker::OnProgress(const EpochProgressMessage* data, size_t count) {
  if (onProgress_.IsEmpty() || count == 0) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  const auto& m = data[count - 1];
  try {
    onProgress_.Call({Napi::Number::New(env, double(m.done)), Napi::Number::New(env, double(m.total)),
                      Napi::Number::New(env, m.loss)});
  } catch (const Napi::Error&) {
    // A throwing progress callback must not take the epoch down; it is not called again.
    onProgress_.Reset();
  }
}

void TrainEpochWorker::OnOK() {
  Napi::Env env = Env();
  core_->busy = false;
  Napi::Object r = Napi::Object::New(env);
  r.Set("loss", result_.meanLoss);
  r.Set("batches", double(result_.batches));
  r.Set("sequences", double(result_.sequences));
  r.Set("positions", double(result_.positions));
  r.Set("steps", double(result_.steps));
  r.Set("optimizerSteps", double(core_->trainer->optimizer().steps()));
  r.Set("seconds", result_.seconds);
  deferred_.Resolve(r);
}

void TrainEpochWorker::OnError(const Napi::Error&) {
  core_->busy = false;
  deferred_.Reject(makeError(Env(), errorCode_, errorMessage_).Value());
}

}  // namespace morec
