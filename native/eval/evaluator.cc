#include "evaluator.h"

#include <algorithm>
#include <random>

#include "../common.h"
#include "../dist/item_table_shard.h"
#include "../train/batch_builder.h"
#include "../train/negative_sampler.h"
#include "ranker.h"

namespace morec {

std::vector<int32_t> Evaluator::ranks(Recommender& model, const SequenceData& seqs, const EvalOptions& opt,
                                      const std::function<void(int64_t, int64_t)>& progress,
                                      const std::atomic<bool>& cancel, const std::shared_ptr<ProcessGroup>& group) {
  const bool parallel = group && group->size() > 1;
  std::vector<int32_t> out;
  try {
    // The item table, too, is encoded once across the ranks (each rank its share of the batches).
    ItemTableShard shard(parallel ? group.get() : nullptr);
    out = localRanks(model, seqs, opt, progress, cancel, parallel ? group->rank() : 0, parallel ? group->size() : 1);
  } catch (...) {
    if (parallel) {
      std::string code, message;
      describeCurrentException(code, message);
      if (code != "EDIST") group->recordFailure(code + ": " + message);
    }
    throw;
  }
  if (parallel) {
    std::vector<torch::Tensor> all{torch::from_blob(out.data(), {int64_t(out.size())}, torch::kInt)};
    group->allreduceMax(all, "gathering the evaluation's ranks");
  }
  return out;
}

std::vector<int32_t> Evaluator::localRanks(Recommender& model, const SequenceData& seqs, const EvalOptions& opt,
                                           const std::function<void(int64_t, int64_t)>& progress,
                                           const std::atomic<bool>& cancel, int64_t rank, int64_t world) {
  const auto& cfg = model.config();
  model.checkSequences(seqs);
  useThreads(cfg.threads);
  torch::NoGradGuard noGrad;
  model.eval();
  std::vector<int32_t> out(static_cast<size_t>(seqs.users()), -1);
  std::vector<int64_t> users;
  std::vector<RankQuery> queries;
  for (int64_t u = 0, evaluable = 0; u < seqs.users(); ++u) {
    const int64_t inputLen = seqs.length(u) - opt.holdOut;
    if (inputLen < 1) continue;
    if (evaluable++ % world != rank) continue;  // another rank's user
    users.push_back(u);
    queries.push_back({seqs.begin(u), inputLen, seqs.begin(u)[inputLen],
                       opt.maskRepeatedTarget && seqs.heldOutRepeated(u, opt.holdOut)});
  }
  const int64_t U = int64_t(users.size());
  if (U == 0) {
    if (world > 1) model.itemTower().embedAll();  // the others gather the item table with this rank's share
    return out;
  }
  const BatchBuilder builder(seqs, cfg.maxLen, cfg.backbone == "sasrec", model.packed());
  // Users are encoded in order of input length (batches with little padding), then put back in order.
  std::vector<int64_t> order(static_cast<size_t>(U));
  for (int64_t i = 0; i < U; ++i) order[size_t(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return std::min(queries[size_t(a)].historyLength, cfg.maxLen) < std::min(queries[size_t(b)].historyLength, cfg.maxLen);
  });
  std::vector<int64_t> sortedUsers(static_cast<size_t>(U)), inverse(static_cast<size_t>(U));
  for (int64_t i = 0; i < U; ++i) {
    sortedUsers[size_t(i)] = users[size_t(order[size_t(i)])];
    inverse[size_t(order[size_t(i)])] = i;
  }
  // The item table first (an encoder tower encodes every item once here), then users index it.
  // Progress counts the table's items, then the users: (done, numItems + users).
  const int64_t N = cfg.numItems;
  stopIfCancelled(cancel, "item", 0, N);
  auto itemVectors = model.itemTower().embedAll([&](int64_t done, int64_t) {
    if (progress) progress(done, N + U);
    if (done < N) stopIfCancelled(cancel, "item", done, N);
  });
  std::vector<torch::Tensor> parts;
  const int64_t userBatches = (U + opt.batchSize - 1) / opt.batchSize;
  for (int64_t b = 0; b < U; b += opt.batchSize) {
    stopIfCancelled(cancel, "user batch", b / opt.batchSize, userBatches);
    const int64_t n = std::min(opt.batchSize, U - b);
    parts.push_back(model.userVectors(builder.inference(sortedUsers.data() + b, n, opt.holdOut).to(model.device()), itemVectors));
    if (progress) progress(N + b + n, N + U);
  }
  auto userVectors =
      torch::cat(parts).index_select(0, torch::tensor(inverse, torch::TensorOptions().dtype(torch::kLong)).to(model.device()));
  std::vector<int32_t> ranks(static_cast<size_t>(U));
  if (opt.sampled) {
    const NegativeSampler sampler(cfg.numItems);
    std::vector<int32_t> negatives(static_cast<size_t>(U * opt.numNegatives)), excluded;
    for (int64_t i = 0; i < U; ++i) {
      std::mt19937_64 rng(static_cast<uint64_t>(opt.seed) * 0x9e3779b97f4a7c15ULL + uint64_t(users[size_t(i)]));
      NegativeSampler::setOf(queries[size_t(i)].history, queries[size_t(i)].historyLength, excluded);
      excluded.insert(std::upper_bound(excluded.begin(), excluded.end(), queries[size_t(i)].target),
                      queries[size_t(i)].target);
      excluded.erase(std::unique(excluded.begin(), excluded.end()), excluded.end());
      sampler.drawDistinct(rng, excluded, opt.numNegatives, negatives.data() + i * opt.numNegatives);
    }
    Ranker::sampledRanking(userVectors, itemVectors, queries.data(), negatives.data(), opt.numNegatives, ranks.data());
  } else {
    Ranker::fullRanking(userVectors, itemVectors, queries.data(), ranks.data(), opt.chunkRows);
  }
  for (int64_t i = 0; i < U; ++i) out[size_t(users[size_t(i)])] = ranks[size_t(i)];
  return out;
}

}  // namespace morec
