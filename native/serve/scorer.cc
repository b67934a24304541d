#include "scorer.h"

#include "../common.h"
#include "../eval/ranker.h"
#include "../train/batch_builder.h"

namespace morec {

Scorer::Scorer(std::shared_ptr<Recommender> model, const torch::Tensor& itemTable, int64_t threads)
    : model_(std::move(model)), numItems_(model_->config().numItems), threads_(threads) {
  if (itemTable.dim() != 2 || itemTable.size(0) != numItems_ + 1 || itemTable.size(1) != model_->config().d)
    throw invalidArg("Expected an item table of (numItems + 1) x d = " + std::to_string(numItems_ + 1) + " x " +
                     std::to_string(model_->config().d) + " floats");
  torch::NoGradGuard noGrad;
  table_ = itemTable.to(model_->device(), torch::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

static void checkItems(const std::vector<int32_t>& items, int64_t numItems, const char* what) {
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i] < 1 || items[i] > numItems)
      throw invalidArg(std::string("Expected item indices in 1..") + std::to_string(numItems) + " for " + what +
                       " but received " + std::to_string(items[i]) + " at position " + std::to_string(i));
}

void Scorer::check(const RecommendRequest& r) const {
  const auto& cfg = model_->config();
  checkItems(r.history, numItems_, "history");
  checkItems(r.exclude, numItems_, "exclude");
  checkItems(r.allowed, numItems_, "filter");
  if (r.k < 1 || r.k > numItems_)
    throw invalidArg("Expected k in 1.." + std::to_string(numItems_) + " but received " + std::to_string(r.k));
  if (cfg.backbone == "dssm" && (r.user < 0 || r.user >= cfg.numUsers))
    throw invalidArg("Expected a DSSM user row in 0.." + std::to_string(cfg.numUsers - 1) + " but received " +
                     std::to_string(r.user));
  if (cfg.backbone == "sasrec" && r.history.empty()) throw invalidArg("Expected a non-empty history for SASRec");
}

std::vector<RecommendResult> Scorer::score(const std::vector<const RecommendRequest*>& batch) {
  const auto& cfg = model_->config();
  const int64_t B = int64_t(batch.size());
  std::vector<RecommendResult> out(static_cast<size_t>(B));
  if (B == 0) return out;
  useServingThreads(threads_ > 0 ? threads_ : cfg.threads);
  lastThreads_ = at::get_num_threads();
  torch::NoGradGuard noGrad;
  model_->eval();
  // The batch's histories as sequences of their own (user r = request r), laid out by the evaluation's
  // BatchBuilder with nothing held out; DSSM rows carry the requests' user rows instead.
  SequenceData seqs;
  seqs.numItems = numItems_;
  seqs.offsets.assign(1, 0);
  std::vector<int64_t> rows(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) {
    const auto& h = batch[size_t(r)]->history;
    seqs.items.insert(seqs.items.end(), h.begin(), h.end());
    seqs.offsets.push_back(int64_t(seqs.items.size()));
    rows[size_t(r)] = cfg.backbone == "dssm" ? batch[size_t(r)]->user : r;
  }
  const BatchBuilder builder(seqs, cfg.maxLen, cfg.backbone == "sasrec", model_->packed());
  auto users = model_->userVectors(builder.inference(rows.data(), B, 0).to(model_->device()), table_);
  auto scores = torch::mm(users.to(torch::kFloat), table_.t()).to(torch::kCPU).contiguous();
  // Masks: history (unless asked not to) and exclusions; the top K of what is left.
  std::vector<std::vector<int32_t>> masked(static_cast<size_t>(B));
  std::vector<TopKQuery> queries(static_cast<size_t>(B));
  std::vector<int64_t> offsets(static_cast<size_t>(B)), counts(static_cast<size_t>(B));
  int64_t total = 0;
  for (int64_t r = 0; r < B; ++r) {
    const auto& q = *batch[size_t(r)];
    auto& m = masked[size_t(r)];
    if (q.maskHistory) m = q.history;
    m.insert(m.end(), q.exclude.begin(), q.exclude.end());
    queries[size_t(r)] = {m.data(), int64_t(m.size()), q.filtered ? q.allowed.data() : nullptr, int64_t(q.allowed.size()), q.k};
    offsets[size_t(r)] = total;
    total += q.k;
  }
  std::vector<int32_t> items(static_cast<size_t>(total));
  std::vector<float> best(static_cast<size_t>(total));
  Ranker::topK(scores, queries.data(), offsets.data(), items.data(), best.data(), counts.data());
  for (int64_t r = 0; r < B; ++r) {
    auto& res = out[size_t(r)];
    res.id = batch[size_t(r)]->id;
    const auto* i0 = items.data() + offsets[size_t(r)];
    const auto* s0 = best.data() + offsets[size_t(r)];
    res.items.assign(i0, i0 + counts[size_t(r)]);
    res.scores.assign(s0, s0 + counts[size_t(r)]);
  }
  return out;
}

}  // namespace morec
