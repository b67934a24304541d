// Base of the async jobs (training epoch, evaluation, item table): runs `run` on morec's job thread
// (JobQueue: one job at a time with the process-wide thread budget, never on libuv's pool), resolves a
// Promise with `result` or rejects it with a morec error (code + message) on any exception, forwards
// progress to an optional JS callback, and marks the model busy for its whole life so no other call can
// touch the model meanwhile; the model's cancel flag (an AbortSignal) stops `run` at its next batch.
// The job holds the model core and its inputs until it ends, even if JS drops the model. Everything JS (the
// Promise, the callback) lives in the context of a thread-safe function and is touched on the JS thread
// only; the job thread reaches JS through that function alone, and stops using it once Node finalizes it
// (the environment of a worker thread going away).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "job_queue.h"
#include "model_core.h"

namespace morec {

template <typename ProgressT>
class PromiseWorker : public std::enable_shared_from_this<PromiseWorker<ProgressT>> {
 public:
  virtual ~PromiseWorker() = default;

  // JS thread: queues the job and returns its Promise.
  Napi::Promise start(Napi::Env env, Napi::Function onProgress) {
    auto* js = new JsSide{Napi::Promise::Deferred::New(env), {}, this->shared_from_this()};
    if (!onProgress.IsEmpty()) js->onProgress = Napi::Persistent(onProgress);
    hasProgress_ = !onProgress.IsEmpty();
    try {
      // Unlimited queue (the job thread never blocks on JS); released when the job ends, so an idle queue
      // keeps no handle open.
      channel_ = Channel::New(env, name_, 0, 1, js, [](Napi::Env, void*, JsSide* side) {
        side->job->closeChannel();
        delete side;
      });
    } catch (...) {
      delete js;
      throw;
    }
    Napi::Promise promise = js->deferred.Promise();
    core_->busy = true;
    core_->cancel = false;
    JobQueue::instance().push(env, &core_->cancel, [job = this->shared_from_this()] { job->execute(); });
    return promise;
  }

 protected:
  PromiseWorker(const char* name, std::shared_ptr<ModelCore> core) : core_(std::move(core)), name_(name) {}

  virtual void run() = 0;                                                               // job thread
  virtual Napi::Value result(Napi::Env env) = 0;                                        // JS thread
  virtual std::vector<napi_value> progressArgs(Napi::Env env, const ProgressT& p) = 0;  // JS thread
  // JS thread, when the job has ended (resolved or rejected): releases what the job held of JS.
  virtual void settled(Napi::Env env) {}

  // Job thread: reports progress. One call to JS is in flight at a time and it shows the latest report,
  // so a slow callback never makes reports pile up.
  void report(const ProgressT& p) {
    if (!hasProgress_) return;
    std::lock_guard<std::mutex> lock(mutex_);
    latest_ = p;
    if (progressPending_) return;
    progressPending_ = post(Event::progress);
  }

  std::shared_ptr<ModelCore> core_;

 private:
  enum class Event { progress, done };
  struct JsSide {
    Napi::Promise::Deferred deferred;
    Napi::FunctionReference onProgress;
    std::shared_ptr<PromiseWorker> job;
  };
  static void deliver(Napi::Env env, Napi::Function, JsSide* js, Event* event) {
    const Event e = *event;
    delete event;
    if (static_cast<napi_env>(env) == nullptr || js == nullptr) return;  // the environment is going away
    if (e == Event::progress)
      js->job->deliverProgress(env, *js);
    else
      js->job->settle(env, *js);
  }
  using Channel = Napi::TypedThreadSafeFunction<JsSide, Event, deliver>;

  // Job thread.
  void execute() {
    try {
      run();
    } catch (...) {
      describeCurrentException(errorCode_, errorMessage_);
      failed_ = true;
    }
    jobFinished();  // its threads are free before anyone hears it is done
    std::lock_guard<std::mutex> lock(mutex_);
    if (post(Event::done)) channel_.Release();
  }

  // Under mutex_: queues an event for the JS thread unless the channel is gone.
  bool post(Event e) {
    if (!open_) return false;
    auto* data = new Event(e);
    if (channel_.NonBlockingCall(data) == napi_ok) return true;
    delete data;
    return false;
  }

  void closeChannel() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = false;
  }

  // JS thread.
  void deliverProgress(Napi::Env env, JsSide& js) {
    ProgressT p;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      p = latest_;
      progressPending_ = false;
    }
    if (js.onProgress.IsEmpty()) return;
    try {
      js.onProgress.Call(progressArgs(env, p));
    } catch (const Napi::Error&) {
      // A throwing progress callback must not take the work down; it is not called again.
      js.onProgress.Reset();
    }
  }

  void settle(Napi::Env env, JsSide& js) {
    core_->busy = false;
    settled(env);
    if (failed_) {
      js.deferred.Reject(makeError(env, errorCode_, errorMessage_).Value());
      return;
    }
    try {
      js.deferred.Resolve(result(env));
    } catch (const Napi::Error& e) {
      js.deferred.Reject(e.Value());
    } catch (...) {
      std::string code, message;
      describeCurrentException(code, message);
      js.deferred.Reject(makeError(env, code, message).Value());
    }
  }

  const char* name_;
  Channel channel_;
  bool hasProgress_ = false;
  std::mutex mutex_;  // guards open_, latest_, progressPending_ and calls on channel_ from the job thread
  bool open_ = true;  // false once Node finalized the channel
  ProgressT latest_{};
  bool progressPending_ = false;
  bool failed_ = false;  // written by the job thread before `done` is posted, read after it is delivered
  std::string errorCode_, errorMessage_;
};

}  // namespace morec
