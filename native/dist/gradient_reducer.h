// What DistributedDataParallel does after each backward, for libtorch's C++ frontend (which has no DDP): the
// trainable parameters' gradients summed across the process group, in buckets of about `bucketBytes`, each
// bucket's all-reduce started from an autograd hook as soon as backward has accumulated every gradient in it
// (parameters are bucketed in reverse order, roughly the order backward finishes them), so communication
// overlaps the rest of the backward pass. finish() starts what is left, waits, and writes the sums back.
// A parameter that no rank gave a gradient keeps none (as in one process over the whole batch); one that only
// some ranks did gets the sum (absent = zero). The loss is pre-weighted by each rank's share of the global
// batch, so the sum is the global batch's gradient.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

#include "process_group.h"

namespace torch::autograd {
struct Node;
}

namespace morec {

struct ReducerStats {
  int64_t steps = 0;
  int64_t bytesPerStep = 0;     // gradient bytes all-reduced per step
  int64_t buckets = 0;
  int64_t startedInBackward = 0;  // bucket all-reduces started by hooks, before backward ended (summed over steps)
  double waitSeconds = 0.0;       // time finish() spent waiting for all-reduces (communication not overlapped)
  double reduceSeconds = 0.0;     // finish() in all (copies, waits, write-back)
};

class GradientReducer {
 public:
  GradientReducer(std::vector<torch::Tensor> params, std::shared_ptr<ProcessGroup> group, int64_t bucketBytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward completes a step's gradients: its hooks start the buckets.
  void arm();
  // After that backward: every bucket reduced, sums in .grad. `scalars` (float64, CPU) are summed across ranks
  // in the same exchange (the step's weighted loss). Disarms.
  void finish(torch::Tensor& scalars);
  const ReducerStats& stats() const { return stats_; }
  void resetStats();

 private:
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    int64_t pending = 0;
    std::shared_ptr<ProcessGroup::Pending> work;
  };
  void onGradient(size_t param, bool defined);
  void copyIn(size_t param);
  void launch(Bucket& b);

  std::vector<torch::Tensor> params_;
  std::shared_ptr<ProcessGroup> group_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucketOf_;
  std::vector<char> copied_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hookKeys_;
  std::mutex mutex_;
  bool armed_ = false;
  size_t nextLaunch_ = 0;
  // A gradient accumulated twice in one backward (re-entrant checkpointing): buckets started early may be
  // stale, so this step reduces everything again after backward, and later steps start nothing early.
  bool refired_ = false;
  bool overlap_ = true;
  ReducerStats stats_;
};

}  // namespace morec
