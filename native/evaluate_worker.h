// One evaluation pass on the job thread; resolves an Int32Array of 0-based ranks (-1 = user not
// evaluated), reports (usersDone, usersTotal).
#pragma once

#include "eval/evaluator.h"
#include "promise_worker.h"

namespace morec {

struct EvalProgressMessage {
  int64_t done, total;
};

class EvaluateWorker : public PromiseWorker<EvalProgressMessage> {
 public:
  EvaluateWorker(std::shared_ptr<ModelCore> core, std::shared_ptr<const SequenceData> seqs, EvalOptions options);

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;
  std::vector<napi_value> progressArgs(Napi::Env env, const EvalProgressMessage& p) override;

 private:
  std::shared_ptr<const SequenceData> seqs_;
  EvalOptions options_;
  std::vector<int32_t> ranks_;
};

}  // namespace morec
