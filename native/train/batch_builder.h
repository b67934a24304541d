// Builds batches from CSR sequences: left-padded windows trimmed to the longest sequence of the batch.
#pragma once

#include <random>
#include <vector>

#include "../sequence_data.h"
#include "batch.h"
#include "negative_sampler.h"

namespace morec {

class BatchBuilder {
 public:
  // sequential: SASRec windows (else DSSM rows); packed: SASRec tokens without padding.
  BatchBuilder(const SequenceData& seqs, int64_t maxLen, bool sequential, bool packed)
      : seqs_(seqs), maxLen_(maxLen), sequential_(sequential), packed_(sequential && packed) {}

  // Training rows of `users`: each user's training prefix is the sequence without its last two items.
  // SASRec: input = prefix[:-1], positives = prefix[1:] (last maxLen); DSSM: positives = last maxLen of the
  // prefix. One negative per position, not in the prefix.
  Batch training(const int64_t* users, int64_t count, const NegativeSampler& sampler, std::mt19937_64& rng) const;

  // Inference rows: the input is the sequence without its last `holdOut` items (2 = validation, 1 = test).
  Batch inference(const int64_t* users, int64_t count, int64_t holdOut) const;

  // Number of positions a user contributes to training (0 = skipped).
  int64_t trainingPositions(int64_t user) const;

 private:
  const SequenceData& seqs_;
  int64_t maxLen_;
  bool sequential_;
  bool packed_;
};

}  // namespace morec
