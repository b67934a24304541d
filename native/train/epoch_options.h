// The options of one training epoch (read from JS in model_wrap.cc) and what it reports back.
#pragma once

#include <cstdint>

namespace morec {

struct EpochOptions {
  int64_t epoch = 0;
  int64_t batchSize = 128;  // rows per batch: users (SASRec, DSSM user batching) or (user, item) pairs
  double lr = 1e-3;
  double weightDecay = 0.0;
  double encoderLr = 1e-4;
  double encoderWeightDecay = 0.0;
  int64_t gradAccum = 1;
  bool bucketByLength = false;  // group users of similar length into batches (fewer padded positions)
  int64_t maxBatches = 0;       // 0 = the whole epoch (benchmarks use a prefix)
  // Train only part `part` (0-based) of `parts` equal slices of the epoch's batches, with its own random
  // streams: the study's code validates several times per epoch (DSSM on text data: 4).
  int64_t part = 0, parts = 1;
  int64_t progressEvery = 10;
  // false: BCE with one sampled negative per position. true: in-batch softmax cross-entropy, the batch's item
  // occurrences as candidates, with the logQ (popularity) correction.
  bool inBatchLoss = false;
  // DSSM: rows are (user, item) pairs, every item of each training prefix, shuffled (the study's code), and the
  // BCE loss is one mean over the pair's 1 + 1 logits. false: rows are users with the last maxLen items of
  // their prefix, BCE = mean(positives) + mean(negatives) (morec's earlier DSSM; SASRec's form).
  bool dssmPairs = true;
  // Data-parallel (set from the model's process group, not from JS): every rank walks the same global batches
  // and trains its contiguous share of each one's rows.
  int64_t rank = 0, worldSize = 1;
};

struct EpochResult {
  double meanLoss = 0.0;
  // Of the global batches (all ranks together).
  int64_t batches = 0, sequences = 0, positions = 0, steps = 0;
  double seconds = 0.0;
  // Data-parallel epochs: gradient all-reduce figures (ReducerStats over this epoch's steps).
  int64_t allreduceBytesPerStep = 0, allreduceBuckets = 0, bucketsStartedInBackward = 0;
  double allreduceWaitSeconds = 0.0, allreduceSeconds = 0.0;
};

}  // namespace morec
