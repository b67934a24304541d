#include "create_model_worker.h"

#include "model_wrap.h"

namespace morec {

void CreateModelWorker::run() {
  useThreads(config_.threads);
  core_->model = std::make_shared<Recommender>(config_, store_);
  core_->model->eval();
}

Napi::Value CreateModelWorker::result(Napi::Env env) { return ModelWrap::adopt(env, core_); }

}  // namespace morec
