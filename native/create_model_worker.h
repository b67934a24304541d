// A model built on the job thread (Model.load): constructing a model with a large item table (its random
// initialization included) takes a while, so it never holds the event loop. Resolves the JS Model.
#pragma once

#include "models/model_config.h"
#include "promise_worker.h"

namespace morec {

struct NoCreateProgress {};

class CreateModelWorker : public PromiseWorker<NoCreateProgress> {
 public:
  CreateModelWorker(ModelConfig config, std::shared_ptr<const ItemStoreData> store)
      : PromiseWorker("morec.createModel", std::make_shared<ModelCore>()), config_(std::move(config)), store_(std::move(store)) {}

 protected:
  void run() override;
  Napi::Value result(Napi::Env env) override;
  std::vector<napi_value> progressArgs(Napi::Env, const NoCreateProgress&) override { return {}; }

 private:
  ModelConfig config_;
  std::shared_ptr<const ItemStoreData> store_;
};

}  // namespace morec
