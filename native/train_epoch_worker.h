// One training epoch on the libuv thread pool; resolves { loss, batches, sequences, positions, steps,
// seconds }, reports (batchesDone, batchesTotal, runningLoss) through a thread-safe progress callback.
#pragma once

#include <memory>

#include "common.h"
#include "model_core.h"

namespace morec {

struct EpochProgressMessage {
  int64_t done, total;
  double loss;
};

class TrainEpochWorker : public Napi::AsyncProgressWorker<EpochProgressMessage> {
 public:
  TrainEpochWorker(Napi::Env env, std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                   EpochOptions options, Napi::Function onProgress);
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const EpochProgressMessage* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ModelCore> core_;
  std::shared_ptr<const SequenceData> seqs_;
  EpochOptions options_;
  Napi::FunctionReference onProgress_;
  EpochResult result_;
  std::string errorCode_, errorMessage_;
};

}  // namespace morec
