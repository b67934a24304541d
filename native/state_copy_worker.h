// A copy of a model's weights and optimizer state, made on the job thread (Model.save): the copy of a large
// model (hundreds of MB) never holds the event loop, and JS gets arrays over the copies' memory.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "promise_worker.h"

namespace morec {

struct NoProgress {};

class StateCopyWorker : public PromiseWorker<NoProgress> {
 public:
  explicit StateCopyWorker(std::shared_ptr<ModelCore> core) : PromiseWorker("morec.stateCopy", std::move(core)) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;
  std::vector<napi_value> progressArgs(Napi::Env, const NoProgress&) override { return {}; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_, optimizer_;
  int64_t step_ = 0;
};

}  // namespace morec
