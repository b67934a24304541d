// The batches of one training epoch, in order: the rows (users, or (user, item) pairs with DSSM pair
// batching) shuffled with the epoch's seed, cut into batches of batchSize rows (optionally bucketed by
// length), each built on demand with fresh negatives. Trainer::runEpoch trains on them; Model.epochBatches
// lists them (for tests and inspection), so both see exactly the same batches.
#pragma once

#include <torch/torch.h>

#include <random>
#include <utility>
#include <vector>

#include "../models/model_config.h"
#include "../sequence_data.h"
#include "batch_builder.h"
#include "epoch_options.h"
#include "negative_sampler.h"

namespace morec {

// Seeds derived from (a, b): epochs, shuffles, negatives and dropout each get their own stream.
uint64_t mixSeeds(uint64_t a, uint64_t b);
// The seed of the negatives, dropout and torch streams of an epoch (or of one part of it: opt.parts > 1).
uint64_t streamSeed(uint64_t epochSeed, const EpochOptions& opt);

class EpochBatches {
 public:
  // Throws EINVAL when no row has a training position.
  EpochBatches(const SequenceData& seqs, const ModelConfig& config, bool packed, const EpochOptions& opt);
  int64_t size() const { return int64_t(batches_.size()); }
  // Rows of global batch i (all ranks) and of this rank's share of it.
  int64_t rowsIn(int64_t i) const { return batches_[size_t(i)].second - batches_[size_t(i)].first; }
  int64_t shardRows(int64_t i) const { auto [b, e] = shard(i); return e - b; }
  // Training positions of global batch i, and this rank's share of them: the weight of its loss in the
  // batch's mean (1 in one process).
  int64_t positionsIn(int64_t i) const;
  double lossShare(int64_t i) const;
  // This rank's share of batch i on the CPU (the whole batch in one process). Call in order 0, 1, ...: the
  // negatives of all batches come from one stream, the same on every rank.
  Batch build(int64_t i);
  // log p(item) with p = the item's share of all training-prefix interactions (each user's sequence without
  // its last two items), [numItems + 1] float, row 0 = 0: the in-batch loss's logQ correction.
  static torch::Tensor logPopularity(const SequenceData& seqs);

 private:
  std::pair<int64_t, int64_t> shard(int64_t i) const;
  int64_t positionsOf(int64_t begin, int64_t end) const;
  BatchBuilder builder_;
  bool pairs_;
  int64_t rank_, world_;
  NegativeSampler sampler_;
  bool inBatch_;
  std::mt19937_64 negativeRng_;
  std::vector<TrainingRow> rows_;
  std::vector<std::pair<int64_t, int64_t>> batches_;  // [begin, end) ranges of rows_
};

}  // namespace morec
