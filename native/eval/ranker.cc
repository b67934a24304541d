#include "ranker.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace morec {

static void fullRankingCpu(const torch::Tensor& users, const torch::Tensor& items, const RankQuery* q, int32_t* out,
                           int64_t chunkRows) {
  const int64_t U = users.size(0), N1 = items.size(0);
  const float negInf = -std::numeric_limits<float>::infinity();
  auto itemsT = items.t();
  auto buffer = torch::empty({std::min(chunkRows, U), N1}, users.options());
  for (int64_t c0 = 0; c0 < U; c0 += chunkRows) {
    const int64_t rows = std::min(chunkRows, U - c0);
    auto scores = buffer.narrow(0, 0, rows);
    torch::mm_out(scores, users.narrow(0, c0, rows), itemsT);
    float* base = scores.data_ptr<float>();
    at::parallel_for(0, rows, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float* row = base + r * N1;
        const RankQuery& query = q[c0 + r];
        const float t = query.maskTarget ? negInf : row[query.target];
        if (std::isnan(t)) {
          out[c0 + r] = int32_t(N1 - 1);
          continue;
        }
        row[0] = negInf;
        for (int64_t h = 0; h < query.historyLength; ++h)
          if (query.maskTarget || query.history[h] != query.target) row[query.history[h]] = negInf;
        int32_t count = 0;
        for (int64_t j = 1; j < N1; ++j) count += row[j] > t;
        out[c0 + r] = count;
      }
    });
  }
}

static void fullRankingTensor(const torch::Tensor& users, const torch::Tensor& items, const RankQuery* q,
                              int32_t* out, int64_t chunkRows) {
  // Device-agnostic path (CUDA): masks applied with index_put_, counts reduced on the device.
  const int64_t U = users.size(0);
  auto itemsT = items.t();
  for (int64_t c0 = 0; c0 < U; c0 += chunkRows) {
    const int64_t rows = std::min(chunkRows, U - c0);
    auto scores = torch::mm(users.narrow(0, c0, rows), itemsT);
    std::vector<int64_t> maskRows, maskCols, targets(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const RankQuery& query = q[c0 + r];
      targets[size_t(r)] = query.target;
      maskRows.push_back(r);
      maskCols.push_back(0);
      for (int64_t h = 0; h < query.historyLength; ++h)
        if (query.maskTarget || query.history[h] != query.target) {
          maskRows.push_back(r);
          maskCols.push_back(query.history[h]);
        }
    }
    auto opts = torch::TensorOptions().dtype(torch::kLong);
    auto dev = scores.device();
    auto t = torch::from_blob(targets.data(), {rows}, opts).to(dev);
    std::vector<uint8_t> maskTarget(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) maskTarget[size_t(r)] = q[c0 + r].maskTarget;
    auto targetMasked = torch::from_blob(maskTarget.data(), {rows, 1}, torch::kUInt8).to(dev).to(torch::kBool);
    auto targetScores =
        scores.gather(1, t.unsqueeze(1)).masked_fill(targetMasked, -std::numeric_limits<float>::infinity());
    auto mr = torch::from_blob(maskRows.data(), {int64_t(maskRows.size())}, opts).to(dev);
    auto mc = torch::from_blob(maskCols.data(), {int64_t(maskCols.size())}, opts).to(dev);
    scores.index_put_({mr, mc}, -std::numeric_limits<float>::infinity());
    auto counts = (scores > targetScores).sum(1).to(torch::kInt).to(torch::kCPU).contiguous();
    auto nanRows = targetScores.isnan().squeeze(1).to(torch::kInt).to(torch::kCPU).contiguous();
    const int32_t* c = counts.data_ptr<int32_t>();
    const int32_t* nan = nanRows.data_ptr<int32_t>();
    for (int64_t r = 0; r < rows; ++r) out[c0 + r] = nan[r] ? int32_t(items.size(0) - 1) : c[r];
  }
}

void Ranker::fullRanking(const torch::Tensor& userVectors, const torch::Tensor& itemVectors, const RankQuery* queries,
                         int32_t* out, int64_t chunkRows) {
  torch::NoGradGuard noGrad;
  if (userVectors.size(0) == 0) return;
  auto users = userVectors.to(torch::kFloat).contiguous();
  auto items = itemVectors.to(torch::kFloat).contiguous();
  if (users.device().is_cpu())
    fullRankingCpu(users, items, queries, out, chunkRows);
  else
    fullRankingTensor(users, items, queries, out, chunkRows);
}

void Ranker::topK(torch::Tensor& scores, const TopKQuery* queries, const int64_t* outOffsets, int32_t* items,
                  float* outScores, int64_t* counts) {
  const int64_t B = scores.size(0), N1 = scores.size(1);
  const float negInf = -std::numeric_limits<float>::infinity();
  float* base = scores.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    using Entry = std::pair<float, int32_t>;
    // better(a, b): a ranks before b. As a heap comparator the worst kept entry sits on top.
    auto better = [](const Entry& a, const Entry& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); };
    std::vector<Entry> heap;
    for (int64_t r = b0; r < b1; ++r) {
      float* row = base + r * N1;
      const TopKQuery& q = queries[r];
      row[0] = negInf;
      for (int64_t i = 0; i < q.maskedLength; ++i) row[q.masked[i]] = negInf;
      heap.clear();
      const int64_t k = q.k;
      auto consider = [&](int32_t item) {
        const float s = row[item];
        if (!(s > negInf)) return;  // masked, or NaN
        const Entry e{s, item};
        if (int64_t(heap.size()) < k) {
          heap.push_back(e);
          std::push_heap(heap.begin(), heap.end(), better);
        } else if (better(e, heap.front())) {
          std::pop_heap(heap.begin(), heap.end(), better);
          heap.back() = e;
          std::push_heap(heap.begin(), heap.end(), better);
        }
      };
      if (q.allowed) {
        for (int64_t i = 0; i < q.allowedLength; ++i) {
          const int32_t item = q.allowed[i];
          consider(item);
          row[item] = negInf;  // an item listed twice is considered once
        }
      } else {
        for (int32_t item = 1; item < N1; ++item) consider(item);
      }
      std::sort_heap(heap.begin(), heap.end(), better);
      counts[r] = int64_t(heap.size());
      for (size_t i = 0; i < heap.size(); ++i) {
        items[outOffsets[r] + int64_t(i)] = heap[i].second;
        outScores[outOffsets[r] + int64_t(i)] = heap[i].first;
      }
    }
  });
}

void Ranker::sampledRanking(const torch::Tensor& userVectors, const torch::Tensor& itemVectors,
                            const RankQuery* queries, const int32_t* negatives, int64_t perUser, int32_t* out) {
  torch::NoGradGuard noGrad;
  const int64_t U = userVectors.size(0);
  if (U == 0) return;
  std::vector<int64_t> ids(static_cast<size_t>(U * (perUser + 1)));
  for (int64_t u = 0; u < U; ++u) {
    ids[size_t(u * (perUser + 1))] = queries[u].target;
    for (int64_t k = 0; k < perUser; ++k) ids[size_t(u * (perUser + 1) + 1 + k)] = negatives[u * perUser + k];
  }
  auto idx = torch::from_blob(ids.data(), {U * (perUser + 1)}, torch::kLong).to(itemVectors.device());
  auto candidates = itemVectors.to(torch::kFloat).index_select(0, idx).view({U, perUser + 1, -1});
  auto scores = (candidates * userVectors.to(torch::kFloat).unsqueeze(1)).sum(-1);  // [U, 1 + perUser]
  auto counts = (scores.narrow(1, 1, perUser) > scores.narrow(1, 0, 1)).sum(1).to(torch::kInt).to(torch::kCPU).contiguous();
  std::copy(counts.data_ptr<int32_t>(), counts.data_ptr<int32_t>() + U, out);
  for (int64_t u = 0; u < U; ++u)
    if (queries[u].maskTarget) out[u] = int32_t(perUser);
}

}  // namespace morec
