// The native epoch loop: shuffle users (seeded), build batches with fresh negatives, forward, BCE loss,
// backward, AdamW step (with optional gradient accumulation) -- one call per epoch, no JS per step.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "../models/recommender.h"
#include "../sequence_data.h"
#include "adamw.h"

namespace morec {

struct EpochOptions {
  int64_t epoch = 0;
  int64_t batchSize = 128;
  double lr = 1e-3;
  double weightDecay = 0.0;
  double encoderLr = 1e-4;
  double encoderWeightDecay = 0.0;
  int64_t gradAccum = 1;
  bool bucketByLength = false;  // group users of similar length into batches (fewer padded positions)
  int64_t maxBatches = 0;       // 0 = the whole epoch (benchmarks use a prefix)
  int64_t progressEvery = 10;
};

struct EpochResult {
  double meanLoss = 0.0;
  int64_t batches = 0, sequences = 0, positions = 0, steps = 0;
  double seconds = 0.0;
};

// (batches done, batches in epoch, mean loss so far)
using EpochProgress = std::function<void(int64_t, int64_t, double)>;

class Trainer {
 public:
  explicit Trainer(Recommender& model);
  // Throws EABORT at the first batch boundary after `cancel` is set; a failed or aborted epoch leaves the
  // model as between epochs (eval mode, no accumulated gradients), the steps already taken kept.
  EpochResult runEpoch(const SequenceData& seqs, const EpochOptions& opt, const EpochProgress& progress,
                       const std::atomic<bool>& cancel);
  AdamW& optimizer() { return *optimizer_; }

 private:
  Recommender& model_;
  std::unique_ptr<AdamW> optimizer_;
};

}  // namespace morec
