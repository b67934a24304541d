// A c10d process group: a TCPStore rendezvous at MASTER_ADDR:MASTER_PORT (rank 0 serves the store) and a Gloo
// (CPU) or NCCL (CUDA, where the libtorch has it) group over it. Every collective morec runs goes through here,
// so every failure (a timeout, an unreachable master, a rank that died) becomes one coded error (EDIST) naming
// what was being done, this rank and the master. Before the group itself is built, the ranks check each other
// through the store: the same WORLD_SIZE everywhere, no RANK twice -- Gloo's own rendezvous would just wait.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace morec {

struct ProcessGroupOptions {
  std::string masterAddr = "127.0.0.1";
  int64_t masterPort = 29500;
  int64_t worldSize = 1;
  int64_t rank = 0;
  std::chrono::milliseconds timeout{300000};
  std::string backend = "gloo";  // "gloo" | "nccl"
};

class ProcessGroup {
 public:
  // Blocks until every rank has joined (or throws EDIST after the timeout).
  explicit ProcessGroup(const ProcessGroupOptions& options);
  ~ProcessGroup();
  static bool hasBackend(const std::string& backend);

  int64_t rank() const { return options_.rank; }
  int64_t size() const { return options_.worldSize; }
  const std::string& backend() const { return options_.backend; }
  std::string where() const;  // "rank 1 of 2 (master 127.0.0.1:29500)"

  // Collectives, synchronous (wait included). `what` names the step in errors ("gradient all-reduce").
  void allreduceSum(std::vector<torch::Tensor>& tensors, const char* what);
  void allreduceMax(std::vector<torch::Tensor>& tensors, const char* what);
  void broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const char* what);
  void barrier(const char* what);
  // Any number of tensors of any shapes (same on every rank), in flat chunks of at most 64 MiB per dtype
  // (c10d's list arguments are per-device replicas of one tensor, not a list of different tensors).
  void broadcastAll(std::vector<torch::Tensor>& tensors, int64_t root, const char* what);

  // An asynchronous sum all-reduce (the gradient buckets): start, then wait.
  struct Pending;
  std::shared_ptr<Pending> startAllreduceSum(torch::Tensor& tensor, const char* what);
  void wait(const std::shared_ptr<Pending>& pending);

  // The store (small values between ranks: the run's plan, failures). get waits up to the timeout.
  void storeSet(const std::string& key, const std::string& value);
  // timeout 0: the group's.
  std::string storeGet(const std::string& key, std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  bool storeHas(const std::string& key);
  int64_t storeAdd(const std::string& key, int64_t delta);

  // A rank that fails records why in the store, so the others' errors can name it ("rank 1: ...").
  void recordFailure(const std::string& message) noexcept;
  // Rethrows the current exception as EDIST with context: what, this rank, and a recorded failure if any.
  [[noreturn]] void rethrow(const char* what);

 private:
  void checkPeers();
  ProcessGroupOptions options_;
  struct Impl;  // the c10d store and group (their headers stay in process_group.cc)
  std::unique_ptr<Impl> impl_;
};

}  // namespace morec
