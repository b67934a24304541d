// The native epoch loop: the epoch's batches (epoch_batches.h: seeded shuffle of users or (user, item) pairs,
// fresh negatives), forward, loss (BCE, or in-batch softmax with logQ correction), backward, AdamW step (with
// optional gradient accumulation) -- one call per epoch, no JS per step.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "../dist/gradient_reducer.h"
#include "../models/recommender.h"
#include "../sequence_data.h"
#include "adamw.h"
#include "epoch_options.h"

namespace morec {

// (batches done, batches in epoch, mean loss so far)
using EpochProgress = std::function<void(int64_t, int64_t, double)>;

class Trainer {
 public:
  explicit Trainer(Recommender& model);
  // Throws EABORT at the first batch boundary after `cancel` is set; a failed or aborted epoch leaves the
  // model as between epochs (eval mode, no accumulated gradients), the steps already taken kept.
  // With a process group of several ranks the epoch is data-parallel: each rank trains its share of every
  // global batch, gradients are summed across ranks before each optimizer step (GradientReducer), and the
  // loss reported is the global batches'.
  EpochResult runEpoch(const SequenceData& seqs, const EpochOptions& opt, const EpochProgress& progress,
                       const std::atomic<bool>& cancel, const std::shared_ptr<ProcessGroup>& group = nullptr);
  AdamW& optimizer() { return *optimizer_; }

 private:
  Recommender& model_;
  std::unique_ptr<AdamW> optimizer_;
  std::vector<torch::Tensor> trainable_;
  std::unique_ptr<GradientReducer> reducer_;  // for reducerGroup_, made on its first data-parallel epoch
  std::shared_ptr<ProcessGroup> reducerGroup_;
};

}  // namespace morec
