// One evaluation pass on the libuv thread pool; resolves an Int32Array of 0-based ranks (-1 = user not
// evaluated), reports (usersDone, usersTotal) progress.
#pragma once

#include <memory>
#include <vector>

#include "common.h"
#include "eval/evaluator.h"
#include "model_core.h"

namespace morec {

struct EvalProgressMessage {
  int64_t done, total;
};

class EvaluateWorker : public Napi::AsyncProgressWorker<EvalProgressMessage> {
 public:
  EvaluateWorker(Napi::Env env, std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs,
                 EvalOptions options, Napi::Function onProgress);
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const EvalProgressMessage* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ModelCore> core_;
  std::shared_ptr<const SequenceData> seqs_;
  EvalOptions options_;
  Napi::FunctionReference onProgress_;
  std::vector<int32_t> ranks_;
  std::string errorCode_, errorMessage_;
};

}  // namespace morec
