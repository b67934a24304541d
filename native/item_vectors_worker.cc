#include "item_vectors_worker.h"

namespace morec {

void ItemVectorsWorker::run() {
  auto& model = *core_->model;
  stopIfCancelled(core_->cancel, "item", 0, model.config().numItems);
  useThreads(model.config().threads);
  torch::NoGradGuard noGrad;
  model.eval();
  table_ = model.itemTower()
               .embedAll([&](int64_t done, int64_t total) {
                 report({done, total});
                 if (done < total) stopIfCancelled(core_->cancel, "item", done, total);
               })
               .to(torch::kCPU, torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

Napi::Value ItemVectorsWorker::result(Napi::Env env) { return tensorToTypedArray(env, table_); }

std::vector<napi_value> ItemVectorsWorker::progressArgs(Napi::Env env, const ItemVectorsProgress& m) {
  return {Napi::Number::New(env, double(m.done)), Napi::Number::New(env, double(m.total))};
}

}  // namespace morec
