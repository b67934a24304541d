// Evaluation pass: user vectors for every evaluable user (batches, no grad), then ranks of the held-out
// item (validation: second-to-last, holdOut = 2; test: last, holdOut = 1). Users whose input would be
// empty get rank -1 (not evaluated). SequenceData::heldOutRepeated names the users maskRepeatedTarget affects.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "../dist/process_group.h"
#include "../models/recommender.h"
#include "../sequence_data.h"

namespace morec {

struct EvalOptions {
  int64_t holdOut = 2;
  bool sampled = false;
  int64_t numNegatives = 100;
  int64_t seed = 0;
  int64_t batchSize = 512;
  int64_t chunkRows = 1024;
  // The study's protocol: a held-out item that already occurs in the user's input is masked with the rest of
  // the history (always ranked below every unmasked item). false: the target is never masked.
  bool maskRepeatedTarget = false;
};

// progress(done, total): total = numItems (the item table, encoded first) + evaluated users. Throws EABORT at
// the next item-table or user batch once `cancel` is set. With a process group of several ranks, each rank
// ranks every world-th user and the ranks are gathered (a max-all-reduce over -1s): every rank returns all.
class Evaluator {
 public:
  static std::vector<int32_t> ranks(Recommender& model, const SequenceData& seqs, const EvalOptions& opt,
                                    const std::function<void(int64_t, int64_t)>& progress,
                                    const std::atomic<bool>& cancel, const std::shared_ptr<ProcessGroup>& group = nullptr);

 private:
  // The ranks of users rank, rank + world, ... among the evaluable ones; -1 for every other user.
  static std::vector<int32_t> localRanks(Recommender& model, const SequenceData& seqs, const EvalOptions& opt,
                                         const std::function<void(int64_t, int64_t)>& progress,
                                         const std::atomic<bool>& cancel, int64_t rank, int64_t world);
};

}  // namespace morec
