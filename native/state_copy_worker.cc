#include "state_copy_worker.h"

namespace morec {

static torch::Tensor cpuCopy(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat, false, true).contiguous(); }

void StateCopyWorker::run() {
  torch::NoGradGuard noGrad;
  for (auto& [name, t] : modelState(*core_->model)) params_.emplace_back(name, cpuCopy(t));
  auto& opt = core_->trainer().optimizer();
  for (auto& [name, t] : opt.state()) optimizer_.emplace_back(name, cpuCopy(t));
  step_ = opt.steps();
}

Napi::Value StateCopyWorker::result(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("params", namedTensorViews(env, params_));
  Napi::Object opt = Napi::Object::New(env);
  opt.Set("step", double(step_));
  opt.Set("tensors", namedTensorViews(env, optimizer_));
  out.Set("optimizer", opt);
  params_.clear();
  optimizer_.clear();
  return out;
}

}  // namespace morec
