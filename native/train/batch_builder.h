// Builds batches from CSR sequences: SASRec windows (packed, or left-padded and trimmed to the batch's
// longest), DSSM rows of users or of (user, item) pairs.
#pragma once

#include <random>
#include <vector>

#include "../sequence_data.h"
#include "batch.h"
#include "negative_sampler.h"

namespace morec {

// One row of a training batch: a user with all its training positions, or one (user, item) pair.
struct TrainingRow {
  int64_t user;
  int64_t item;  // pair rows: the item's index in the user's sequence; -1: all the user's training positions
};

class BatchBuilder {
 public:
  // sequential: SASRec windows (else DSSM rows); packed: SASRec tokens without padding; pairs: DSSM rows are
  // (user, item) pairs over every item of the training prefix (else users with the last maxLen prefix items).
  BatchBuilder(const SequenceData& seqs, int64_t maxLen, bool sequential, bool packed, bool pairs = false)
      : seqs_(seqs), maxLen_(maxLen), sequential_(sequential), packed_(sequential && packed), pairs_(!sequential && pairs) {}

  // Training rows: each user's training prefix is the sequence without its last two items. SASRec: input =
  // prefix[:-1], positives = prefix[1:] (last maxLen); DSSM: positives = the pair's item, or the last maxLen
  // items of the prefix. BCE (inBatch false): one negative per position, not in the prefix, drawn from rng.
  // inBatch: no negatives; candIds / targetCol / seenMask describe the in-batch candidates instead.
  Batch training(const TrainingRow* rows, int64_t count, const NegativeSampler& sampler, std::mt19937_64& rng,
                 bool inBatch) const;

  // Draws the negatives training(rows, count, ...) would draw, without building the batch: a data-parallel
  // rank skips the other ranks' rows of a global batch and keeps the one negative stream of one process.
  void skipNegatives(const TrainingRow* rows, int64_t count, const NegativeSampler& sampler, std::mt19937_64& rng) const;

  // Inference rows: the input is the sequence without its last `holdOut` items (2 = validation, 1 = test).
  Batch inference(const int64_t* users, int64_t count, int64_t holdOut) const;

  // Number of positions a user contributes to training (0 = skipped).
  int64_t trainingPositions(int64_t user) const;
  // The rows of one epoch, before shuffling: every user with training positions, or every (user, item) pair.
  std::vector<TrainingRow> trainingRows() const;

 private:
  const SequenceData& seqs_;
  int64_t maxLen_;
  bool sequential_;
  bool packed_;
  bool pairs_;
};

}  // namespace morec
