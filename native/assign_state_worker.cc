#include "assign_state_worker.h"


namespace morec {

torch::Tensor AssignStateWorker::source(Napi::Env env, const Napi::Object& src, const std::string& name,
                                        const torch::Tensor& like, const char* what) {
  auto arr = namedFloat32Array(src, name, like.numel(), what);
  napi_ref ref;
  if (napi_create_reference(env, arr, 1, &ref) != napi_ok) throw MorecException("ENATIVE", "cannot hold a source array");
  held_.push_back(ref);
  return torch::from_blob(arr.Data(), like.sizes(), torch::kFloat);
}

AssignStateWorker::AssignStateWorker(Napi::Env env, std::shared_ptr<ModelCore> core, const Napi::Object& params,
                                     const Napi::Value& optimizer)
    : PromiseWorker("morec.assignState", std::move(core)) {
  try {
    std::set<std::string> known;
    auto state = modelState(*core_->model);
    for (const auto& kv : state) known.insert(kv.first);
    checkKnownNames(params, known, "parameter");
    for (const auto& [name, t] : state) params_.emplace_back(t, source(env, params, name, t, "parameter"));
    if (!optimizer.IsUndefined() && !optimizer.IsNull()) {
      if (!optimizer.IsObject()) throw invalidArg("Expected an optimizer state object but received " + describeValue(optimizer));
      Napi::Object o = optimizer.As<Napi::Object>();
      step_ = readInt(o, "step", 0, 0, INT64_C(1) << 50);
      Napi::Value tv = o.Get("tensors");
      if (!tv.IsObject()) throw invalidArg("Expected an object for tensors but received " + describeValue(tv));
      std::set<std::string> names;
      auto slots = core_->trainer().optimizer().state();
      for (const auto& kv : slots) names.insert(kv.first);
      checkKnownNames(tv.As<Napi::Object>(), names, "optimizer tensor");
      for (const auto& [name, t] : slots) optimizer_[name] = source(env, tv.As<Napi::Object>(), name, t, "optimizer tensor");
      hasOptimizer_ = true;
    }
  } catch (...) {
    settled(env);
    throw;
  }
}

void AssignStateWorker::run() {
  torch::NoGradGuard noGrad;
  for (auto& [weight, src] : params_) weight.copy_(src);
  core_->model->itemTower().weightsChanged();
  if (hasOptimizer_) core_->trainer().optimizer().loadState(step_, optimizer_);
  params_.clear();
  optimizer_.clear();
}

void AssignStateWorker::settled(Napi::Env env) {
  params_.clear();
  optimizer_.clear();
  for (napi_ref r : held_) napi_delete_reference(env, r);
  held_.clear();
}

}  // namespace morec
