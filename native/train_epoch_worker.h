// One training epoch on the job thread; resolves { loss, batches, sequences, positions, steps,
// optimizerSteps, seconds }, reports (batchesDone, batchesTotal, runningLoss).
#pragma once

#include "promise_worker.h"

namespace morec {

struct EpochProgressMessage {
  int64_t done, total;
  double loss;
};

class TrainEpochWorker : public PromiseWorker<EpochProgressMessage> {
 public:
  TrainEpochWorker(std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs, EpochOptions options);

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;
  std::vector<napi_value> progressArgs(Napi::Env env, const EpochProgressMessage& p) override;

 private:
  std::shared_ptr<const SequenceData> seqs_;
  EpochOptions options_;
  EpochResult result_;
};

}  // namespace morec
