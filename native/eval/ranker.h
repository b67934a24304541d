// Ranking of held-out items. Full ranking scores every item (chunks of users x all items as one GEMM into a
// reused buffer) and counts, in the same pass, how many unmasked items score strictly higher than the
// target: that count is the target's 0-based rank. Masked: padding (item 0) and the items of the user's
// input history -- the target itself only when the query says so (maskTarget: the study's code masks a
// target the user saw before with the rest of the history, so it scores -inf and every unmasked item
// counts above it: a miss whenever at least K items are unmasked). Sampled ranking counts only over given
// negatives (a masked target: all of them).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace morec {

// One serving request's selection: the items it may not get (padding is always masked) and, optionally, the
// only items it may get.
struct TopKQuery {
  const int32_t* masked;  // history items (when masked) and exclusions
  int64_t maskedLength;
  const int32_t* allowed;  // null: every item
  int64_t allowedLength;
  int64_t k;
};

struct RankQuery {
  const int32_t* history;  // items to mask
  int64_t historyLength;
  int32_t target;
  bool maskTarget = false;  // the target is in the history and is masked with it
};

class Ranker {
 public:
  // userVectors [U, d], itemVectors [N + 1, d] (row 0 = padding); out: U ranks.
  static void fullRanking(const torch::Tensor& userVectors, const torch::Tensor& itemVectors,
                          const RankQuery* queries, int32_t* out, int64_t chunkRows);
  // Top K per row of scores [B, N + 1] (CPU float, overwritten: masked entries become -inf): the k best
  // unmasked, allowed items by score, ties by the smaller item index, NaN scores never chosen. items/scores
  // get queries[b].k entries per row at out offsets outOffsets[b]; counts[b]: how many were found (fewer when
  // fewer items are allowed).
  static void topK(torch::Tensor& scores, const TopKQuery* queries, const int64_t* outOffsets, int32_t* items,
                   float* outScores, int64_t* counts);
  // negatives: U x perUser item indices; rank = negatives scoring strictly higher than the target.
  static void sampledRanking(const torch::Tensor& userVectors, const torch::Tensor& itemVectors,
                             const RankQuery* queries, const int32_t* negatives, int64_t perUser, int32_t* out);
};

}  // namespace morec
