#include "batch_builder.h"

#include <algorithm>

namespace morec {

static torch::Tensor longTensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {int64_t(v.size())}, torch::kLong).clone();
}

int64_t BatchBuilder::trainingPositions(int64_t user) const {
  const int64_t prefix = std::max<int64_t>(seqs_.length(user) - 2, 0);
  if (sequential_) return std::min(std::max<int64_t>(prefix - 1, 0), maxLen_);
  if (pairs_) return prefix;  // every item: the data's window (the last maxLen + 3 kept) bounds it, as in the study
  return std::min(prefix, maxLen_);
}

std::vector<TrainingRow> BatchBuilder::trainingRows() const {
  std::vector<TrainingRow> rows;
  for (int64_t u = 0; u < seqs_.users(); ++u) {
    const int64_t n = trainingPositions(u);
    if (n == 0) continue;
    if (!pairs_) {
      rows.push_back({u, -1});
      continue;
    }
    const int64_t prefixLen = seqs_.length(u) - 2;
    for (int64_t k = prefixLen - n; k < prefixLen; ++k) rows.push_back({u, k});
  }
  return rows;
}

Batch BatchBuilder::training(const TrainingRow* rows, int64_t count, const NegativeSampler& sampler,
                             std::mt19937_64& rng, bool inBatch) const {
  Batch b;
  b.rows = count;
  const bool padded = sequential_ && !packed_;
  int64_t T = 1;
  if (padded)
    for (int64_t r = 0; r < count; ++r) T = std::max(T, trainingPositions(rows[r].user));
  PackedRows packedRows(maxLen_);
  std::vector<int64_t> input(padded ? count * T : 0, 0), userIds(count), validIdx, rowOfValid, pos, neg, cand, targetCol;
  std::vector<int32_t> seen;
  std::vector<std::vector<int32_t>> seenOfRow(inBatch ? count : 0);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t u = rows[r].user;
    userIds[r] = u;
    const int64_t prefixLen = seqs_.length(u) - 2;
    const int32_t* prefix = seqs_.begin(u);
    // This row's positives: prefix[first .. first + n).
    const int64_t n = pairs_ ? 1 : trainingPositions(u);
    const int64_t first = pairs_ ? rows[r].item : prefixLen - n;
    if (packed_) packedRows.add(prefix + first - 1, n);  // input prefix[k-1] predicts prefix[k]
    if (n == 0) continue;
    NegativeSampler::setOf(prefix, prefixLen, seen);
    const int64_t rowColumns = int64_t(cand.size());
    // SASRec's in-batch candidates: the row's whole window, prefix[first - 1 .. first + n) (the study's code
    // scores against every item of the batch's sequences, the first input included).
    if (inBatch && sequential_)
      for (int64_t j = -1; j < n; ++j) cand.push_back(prefix[first + j]);
    for (int64_t j = 0; j < n; ++j) {
      if (padded) {
        const int64_t col = T - n + j;
        input[r * T + col] = prefix[first + j - 1];
        validIdx.push_back(r * T + col);
      }
      rowOfValid.push_back(r);
      pos.push_back(prefix[first + j]);
      if (!inBatch) {
        neg.push_back(sampler.draw(rng, seen));
      } else if (sequential_) {
        targetCol.push_back(rowColumns + j + 1);
      } else {
        targetCol.push_back(int64_t(cand.size()));
        cand.push_back(prefix[first + j]);
      }
    }
    if (inBatch) seenOfRow[size_t(r)] = seen;
  }
  if (packed_) packedRows.into(b);
  if (padded) {
    b.inputIds = longTensor(input).view({count, T});
    b.nonPad = b.inputIds.ne(0);
    b.validIdx = longTensor(validIdx);
  }
  b.userIds = longTensor(userIds);
  b.rowOfValid = longTensor(rowOfValid);
  b.posIds = longTensor(pos);
  if (!inBatch) {
    b.negIds = longTensor(neg);
    return b;
  }
  const int64_t C = int64_t(cand.size());
  b.candIds = longTensor(cand);
  b.targetCol = longTensor(targetCol);
  b.seenMask = torch::zeros({count, C}, torch::kBool);
  bool* mask = b.seenMask.data_ptr<bool>();
  for (int64_t r = 0; r < count; ++r) {
    const auto& s = seenOfRow[size_t(r)];
    for (int64_t c = 0; c < C; ++c) mask[r * C + c] = std::binary_search(s.begin(), s.end(), int32_t(cand[size_t(c)]));
  }
  return b;
}

void BatchBuilder::skipNegatives(const TrainingRow* rows, int64_t count, const NegativeSampler& sampler,
                                 std::mt19937_64& rng) const {
  std::vector<int32_t> seen;
  for (int64_t r = 0; r < count; ++r) {
    const int64_t u = rows[r].user;
    const int64_t n = pairs_ ? 1 : trainingPositions(u);
    if (n == 0) continue;
    NegativeSampler::setOf(seqs_.begin(u), seqs_.length(u) - 2, seen);
    for (int64_t j = 0; j < n; ++j) sampler.draw(rng, seen);
  }
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
