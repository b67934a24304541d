// Base of the async workers: runs `run` on the libuv thread pool, resolves a Promise with `result`, rejects
// it with a morec error (code + message) on any exception, forwards progress to an optional JS callback,
// and marks the model busy for its whole life so no other call can touch the model meanwhile.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "model_core.h"

namespace morec {

template <typename ProgressT>
class PromiseWorker : public Napi::AsyncProgressWorker<ProgressT> {
 public:
  using Base = Napi::AsyncProgressWorker<ProgressT>;
  using Progress = typename Base::ExecutionProgress;

  PromiseWorker(Napi::Env env, const char* name, std::shared_ptr<ModelCore> core, Napi::Function onProgress)
      : Base(env, name), deferred_(Napi::Promise::Deferred::New(env)), core_(std::move(core)) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
    core_->busy = true;
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void run(const Progress& progress) = 0;                                  // worker thread
  virtual Napi::Value result(Napi::Env env) = 0;                                    // JS thread
  virtual std::vector<napi_value> progressArgs(Napi::Env env, const ProgressT& p) = 0;  // JS thread

  void Execute(const Progress& progress) final {
    try {
      run(progress);
    } catch (...) {
      describeCurrentException(errorCode_, errorMessage_);
      this->SetError(errorMessage_);
    }
  }

  void OnProgress(const ProgressT* data, size_t count) final {
    if (onProgress_.IsEmpty() || count == 0) return;
    Napi::Env env = this->Env();
    Napi::HandleScope scope(env);
    try {
      onProgress_.Call(progressArgs(env, data[count - 1]));
    } catch (const Napi::Error&) {
      // A throwing progress callback must not take the work down; it is not called again.
      onProgress_.Reset();
    }
  }

  void OnOK() final {
    core_->busy = false;
    deferred_.Resolve(result(this->Env()));
  }

  void OnError(const Napi::Error&) final {
    core_->busy = false;
    deferred_.Reject(makeError(this->Env(), errorCode_, errorMessage_).Value());
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ModelCore> core_;

 private:
  Napi::FunctionReference onProgress_;
  std::string errorCode_, errorMessage_;
};

}  // namespace morec
