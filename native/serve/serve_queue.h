// The process-wide serving thread: recommendation requests of every served model queue here and are answered
// in micro-batches -- each pass takes every request queued for one model (up to its maxBatch), so requests
// that arrive while a pass runs are scored together by the next one: one user-encoder pass and one GEMM for
// all of them. It runs beside the job thread (epochs, evaluations), so serving never waits for a training
// epoch; each pass uses the process thread budget (setThreads) like every job.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "scorer.h"

namespace morec {

// What the queue serves: a model's scorer and where its answers go.
class ServeClient {
 public:
  virtual ~ServeClient() = default;
  // Most requests per pass (1: no micro-batching).
  virtual int64_t maxBatch() const = 0;
  // False once the client is closed or its environment is gone: its queued requests are dropped unserved.
  virtual bool open() const = 0;
  // Serving thread: scores the batch and delivers the answers. Must not throw.
  virtual void serve(std::vector<RecommendRequest>& batch) = 0;
};

class ServeQueue {
 public:
  // The one queue of the process; never destroyed, its thread detached (an idle queue holds nothing open).
  static ServeQueue& instance();

  // Queues requests together: none is taken before all are queued, so they share a pass (up to maxBatch).
  void push(const std::shared_ptr<ServeClient>& client, std::vector<RecommendRequest> requests);
  // Removes the client's queued requests (not the pass in flight) and returns them.
  std::vector<RecommendRequest> drop(const ServeClient* client);
  // The client's requests queued now.
  int64_t queued(const ServeClient* client);

 private:
  struct Entry {
    std::shared_ptr<ServeClient> client;
    RecommendRequest request;
  };
  ServeQueue() = default;
  void loop();

  std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<Entry> queue_;
  bool started_ = false;
};

}  // namespace morec
