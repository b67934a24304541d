// Weights (and optionally the optimizer state) copied into a model on the job thread (Model.load): the JS
// arrays are checked (names, sizes) on the JS thread and held until the copy is done, so a large checkpoint
// never holds the event loop.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "promise_worker.h"

namespace morec {

struct NoAssignProgress {};

class AssignStateWorker : public PromiseWorker<NoAssignProgress> {
 public:
  // params: { name: Float32Array | { data } } for every weight; optimizer: { step, tensors } or undefined.
  AssignStateWorker(Napi::Env env, std::shared_ptr<ModelCore> core, const Napi::Object& params, const Napi::Value& optimizer);
  ~AssignStateWorker() override = default;

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }
  std::vector<napi_value> progressArgs(Napi::Env, const NoAssignProgress&) override { return {}; }
  void settled(Napi::Env env) override;

 private:
  // The source array's memory as a tensor of `like`'s shape; the array is referenced until settled().
  torch::Tensor source(Napi::Env env, const Napi::Object& src, const std::string& name, const torch::Tensor& like, const char* what);

  std::vector<std::pair<torch::Tensor, torch::Tensor>> params_;  // (weight, source view)
  bool hasOptimizer_ = false;
  int64_t step_ = 0;
  std::map<std::string, torch::Tensor> optimizer_;  // name -> source view
  std::vector<napi_ref> held_;
};

}  // namespace morec
