#include "batch_builder.h"

#include <algorithm>

namespace morec {

static torch::Tensor longTensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {int64_t(v.size())}, torch::kLong).clone();
}

int64_t BatchBuilder::trainingPositions(int64_t user) const {
  int64_t prefix = seqs_.length(user) - 2;
  if (sequential_) return std::min(std::max<int64_t>(prefix - 1, 0), maxLen_);
  return std::min(std::max<int64_t>(prefix, 0), maxLen_);
}

Batch BatchBuilder::training(const int64_t* users, int64_t count, const NegativeSampler& sampler,
                             std::mt19937_64& rng) const {
  Batch b;
  b.rows = count;
  if (packed_) {
    PackedRows rows(maxLen_);
    std::vector<int64_t> pos, neg, userIds(users, users + count);
    std::vector<int32_t> seen;
    for (int64_t r = 0; r < count; ++r) {
      const int64_t u = users[r], n = trainingPositions(u), prefixLen = seqs_.length(u) - 2;
      const int32_t* prefix = seqs_.begin(u);
      NegativeSampler::setOf(prefix, prefixLen, seen);
      rows.add(prefix + prefixLen - n - 1, n);  // input prefix[k-1] predicts prefix[k] for the last n positions k
      for (int64_t j = 0; j < n; ++j) {
        pos.push_back(prefix[prefixLen - n + j]);
        neg.push_back(sampler.draw(rng, seen));
      }
    }
    rows.into(b);
    b.userIds = longTensor(userIds);
    b.posIds = longTensor(pos);
    b.negIds = longTensor(neg);
    return b;
  }
  int64_t T = 1;
  for (int64_t i = 0; i < count; ++i) T = std::max(T, trainingPositions(users[i]));
  std::vector<int64_t> input(sequential_ ? count * T : 0, 0), userIds(count), validIdx, rowOfValid, pos, neg;
  std::vector<int32_t> seen;
  for (int64_t r = 0; r < count; ++r) {
    const int64_t u = users[r];
    userIds[r] = u;
    const int64_t n = trainingPositions(u);
    const int64_t prefixLen = seqs_.length(u) - 2;
    if (n == 0) continue;
    const int32_t* prefix = seqs_.begin(u);
    NegativeSampler::setOf(prefix, prefixLen, seen);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t col = T - n + j;
      int64_t target;
      if (sequential_) {
        // input prefix[k-1] predicts prefix[k], for the last n positions k of the prefix
        const int64_t k = prefixLen - n + j;
        input[r * T + col] = prefix[k - 1];
        target = prefix[k];
      } else {
        target = prefix[prefixLen - n + j];
      }
      validIdx.push_back(r * T + col);
      rowOfValid.push_back(r);
      pos.push_back(target);
      neg.push_back(sampler.draw(rng, seen));
    }
  }
  if (sequential_) {
    b.inputIds = longTensor(input).view({count, T});
    b.nonPad = b.inputIds.ne(0);
  }
  b.userIds = longTensor(userIds);
  b.validIdx = longTensor(validIdx);
  b.rowOfValid = longTensor(rowOfValid);
  b.posIds = longTensor(pos);
  b.negIds = longTensor(neg);
  return b;
}

Batch BatchBuilder::inference(const int64_t* users, int64_t count, int64_t holdOut) const {
  Batch b;
  b.rows = count;
  std::vector<int64_t> userIds(users, users + count);
  b.userIds = longTensor(userIds);
  if (!sequential_) return b;
  if (packed_) {
    PackedRows rows(maxLen_);
    std::vector<int64_t> last;
    for (int64_t r = 0; r < count; ++r) {
      const int64_t len = std::max<int64_t>(seqs_.length(users[r]) - holdOut, 0);
      const int64_t n = std::min(maxLen_, len);
      rows.add(seqs_.begin(users[r]) + len - n, n);
      last.push_back(rows.tokens() - 1);
    }
    rows.into(b);
    b.lastToken = longTensor(last);
    return b;
  }
  int64_t T = 1;
  for (int64_t i = 0; i < count; ++i)
    T = std::max(T, std::min(maxLen_, std::max<int64_t>(seqs_.length(users[i]) - holdOut, 0)));
  std::vector<int64_t> input(count * T, 0);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t len = std::max<int64_t>(seqs_.length(users[r]) - holdOut, 0);
    const int64_t n = std::min(maxLen_, len);
    const int32_t* s = seqs_.begin(users[r]);
    for (int64_t j = 0; j < n; ++j) input[r * T + (T - n + j)] = s[len - n + j];
  }
  b.inputIds = longTensor(input).view({count, T});
  b.nonPad = b.inputIds.ne(0);
  return b;
}

}  // namespace morec
