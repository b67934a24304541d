// The whole item table ([numItems + 1, d], row 0 = padding) computed on the job thread: an encoder
// tower encodes every item here, so it must not block the event loop. Resolves a Float32Array copy (later
// training does not change it); reports (itemsDone, itemsTotal).
#pragma once

#include "promise_worker.h"

namespace morec {

struct ItemVectorsProgress {
  int64_t done, total;
};

class ItemVectorsWorker : public PromiseWorker<ItemVectorsProgress> {
 public:
  explicit ItemVectorsWorker(std::shared_ptr<ModelCore> core) : PromiseWorker("morec.itemVectors", std::move(core)) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;
  std::vector<napi_value> progressArgs(Napi::Env env, const ItemVectorsProgress& p) override;

 private:
  torch::Tensor table_;
};

}  // namespace morec
