#include "train_epoch_worker.h"

namespace morec {

TrainEpochWorker::TrainEpochWorker(std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                                   EpochOptions options)
    : PromiseWorker("morec.trainEpoch", std::move(core)), seqs_(std::move(seqs)), options_(options) {}

void TrainEpochWorker::run() {
  result_ = core_->trainer().runEpoch(
      *seqs_, options_, [&](int64_t done, int64_t total, double loss) { report({done, total, loss}); }, core_->cancel);
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
  return r;
}

}  // namespace morec
