#include "train_epoch_worker.h"

namespace morec {

TrainEpochWorker::TrainEpochWorker(Napi::Env env, std::shared_ptr<ModelCore> core,
                                   std::shared_ptr<const SequenceData> seqs, EpochOptions options,
                                   Napi::Function onProgress)
    : PromiseWorker(env, "morec.trainEpoch", std::move(core), onProgress), seqs_(std::move(seqs)), options_(options) {}

void TrainEpochWorker::run(const Progress& progress) {
  result_ = core_->trainer->runEpoch(*seqs_, options_, [&](int64_t done, int64_t total, double loss) {
    EpochProgressMessage m{done, total, loss};
    progress.Send(&m, 1);
  });
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
  r.Set("optimizerSteps", double(core_->trainer->optimizer().steps()));
  r.Set("seconds", result_.seconds);
  return r;
}

}  // namespace morec
