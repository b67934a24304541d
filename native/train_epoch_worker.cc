#include "train_epoch_worker.h"

namespace morec {

TrainEpochWorker::TrainEpochWorker(std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                                   EpochOptions options)
    : PromiseWorker("morec.trainEpoch", std::move(core)), seqs_(std::move(seqs)), options_(options) {}

void TrainEpochWorker::run() {
  result_ = core_->trainer().runEpoch(
      *seqs_, options_, [&](int64_t done, int64_t total, double loss) { report({done, total, loss}); }, core_->cancel, core_->group);
  releaseFreeMemory();
}

std::vector<napi_value> TrainEpochWorker::progressArgs(Napi::Env env, const EpochProgressMessage& m) {
  return {Napi::Number::New(env, double(m.done)), Napi::Number::New(env, double(m.total)), Napi::Number::New(env, m.loss)};
}

Napi::Value TrainEpochWorker::result(Napi::Env env) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("loss", result_.meanLoss);
  r.Set("batches", double(result_.batches));
  r.Set("sequences", double(result_.sequences));
  r.Set("positions", double(result_.positions));
  r.Set("steps", double(result_.steps));
  r.Set("optimizerSteps", double(core_->trainer().optimizer().steps()));
  r.Set("seconds", result_.seconds);
  if (result_.allreduceBuckets > 0) {
    Napi::Object a = Napi::Object::New(env);
    a.Set("bytesPerStep", double(result_.allreduceBytesPerStep));
    a.Set("buckets", double(result_.allreduceBuckets));
    a.Set("startedInBackward", double(result_.bucketsStartedInBackward));
    a.Set("waitSeconds", result_.allreduceWaitSeconds);
    a.Set("seconds", result_.allreduceSeconds);
    r.Set("allreduce", a);
  }
  return r;
}

}  // namespace morec
