#include "serve_queue.h"

#include <thread>

namespace morec {

ServeQueue& ServeQueue::instance() {
  static ServeQueue* queue = new ServeQueue();  // leaked on purpose: no destructor runs while its thread may
  return *queue;
}

void ServeQueue::push(const std::shared_ptr<ServeClient>& client, std::vector<RecommendRequest> requests) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& r : requests) queue_.push_back({client, std::move(r)});
  if (!started_) {
    std::thread([this] { loop(); }).detach();
    started_ = true;
  }
  queued_.notify_one();
}

std::vector<RecommendRequest> ServeQueue::drop(const ServeClient* client) {
  std::vector<RecommendRequest> out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->client.get() == client) {
      out.push_back(std::move(it->request));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

int64_t ServeQueue::queued(const ServeClient* client) {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& e : queue_) n += e.client.get() == client;
  return n;
}

void ServeQueue::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    queued_.wait(lock, [this] { return !queue_.empty(); });
    // The oldest request's model, with every request queued for it (up to its maxBatch), in order.
    std::shared_ptr<ServeClient> client = queue_.front().client;
    const int64_t limit = client->maxBatch();
    std::vector<RecommendRequest> batch;
    for (auto it = queue_.begin(); it != queue_.end() && int64_t(batch.size()) < limit;) {
      if (it->client == client) {
        batch.push_back(std::move(it->request));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    if (client->open()) client->serve(batch);
    batch.clear();
    client.reset();  // what the pass held is released off the lock
    lock.lock();
  }
}

}  // namespace morec
