#include "job_queue.h"

#include <thread>

#include "common.h"

namespace morec {

JobQueue& JobQueue::instance() {
  static JobQueue* queue = new JobQueue();  // leaked on purpose: no destructor runs while its thread may
  return *queue;
}

void JobQueue::push(napi_env owner, std::atomic<bool>* cancel, std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.push_back({owner, cancel, std::move(task)});
  if (!started_) {
    std::thread([this] { loop(); }).detach();
    started_ = true;
  }
  queued_.notify_one();
}

void JobQueue::loop() {
  markJobThread();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    queued_.wait(lock, [this] { return !queue_.empty(); });
    Entry e = std::move(queue_.front());
    queue_.pop_front();
    running_ = e.owner;
    runningCancel_ = e.cancel;
    lock.unlock();
    e.task();  // a task reports its own errors; it does not throw
    jobFinished();
    e.task = nullptr;  // what the job held is released off the lock
    lock.lock();
    running_ = nullptr;
    runningCancel_ = nullptr;
    finished_.notify_all();
  }
}

void JobQueue::dropOwner(napi_env owner) {
  std::deque<Entry> dropped;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->owner == owner) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (running_ == owner && runningCancel_) *runningCancel_ = true;
    finished_.wait(lock, [&] { return running_ != owner; });
  }
  // `dropped` is destroyed here, off the lock: the jobs' native state only (their JS side belongs to
  // thread-safe functions that Node finalizes with the environment).
}

}  // namespace morec
