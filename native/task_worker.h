// A short job given as two functions: `work` on the job thread, `settle` on the JS thread making the value the
// Promise resolves with. For the process group's blocking calls (connecting, waiting on the store, a collective
// from JS, joining a model to a group), which have no progress to report. `core` is the model the job works
// on (busy meanwhile), or a fresh one when it works on none.
#pragma once

#include <functional>

#include "promise_worker.h"

namespace morec {

struct NoTaskProgress {};

class TaskWorker : public PromiseWorker<NoTaskProgress> {
 public:
  TaskWorker(const char* name, std::shared_ptr<ModelCore> core, std::function<void()> work,
             std::function<Napi::Value(Napi::Env)> settle)
      : PromiseWorker(name, core ? std::move(core) : std::make_shared<ModelCore>()), work_(std::move(work)), settle_(std::move(settle)) {}

 protected:
  void run() override { work_(); }
  Napi::Value result(Napi::Env env) override { return settle_ ? settle_(env) : env.Undefined(); }
  std::vector<napi_value> progressArgs(Napi::Env, const NoTaskProgress&) override { return {}; }

 private:
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> settle_;
};

}  // namespace morec
