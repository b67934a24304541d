// The process-wide job thread: the long native jobs (training epochs, evaluations, item tables) of every
// model and every Node environment (worker threads included) run here, one at a time and in the order
// they were queued, each with the shared thread budget. Concurrent calls therefore queue instead of each
// taking every core, and they never occupy libuv's thread pool, which fs, dns and zlib need.
#pragma once

#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

namespace morec {

class JobQueue {
 public:
  // The one queue of the process. It is never destroyed and its thread is detached: an idle queue does
  // not keep the event loop alive nor delay the process's exit.
  static JobQueue& instance();

  // Runs `task` on the job thread after everything queued before it. `owner`: the environment the job
  // reports to; `cancel`: the flag that stops it at its next batch (it lives as long as `task`).
  void push(napi_env owner, std::atomic<bool>* cancel, std::function<void()> task);

  // `owner` is going away: its queued jobs are dropped, its running job is cancelled and waited for
  // (it stops at its next batch), so no job of a dead environment outlives it.
  void dropOwner(napi_env owner);

 private:
  struct Entry {
    napi_env owner;
    std::atomic<bool>* cancel;
    std::function<void()> task;
  };
  JobQueue() = default;
  void loop();

  std::mutex mutex_;
  std::condition_variable queued_, finished_;
  std::deque<Entry> queue_;
  napi_env running_ = nullptr;  // owner of the job on the thread now
  std::atomic<bool>* runningCancel_ = nullptr;
  bool started_ = false;
};

}  // namespace morec
