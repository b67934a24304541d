#include "epoch_batches.h"

#include <algorithm>
#include <cmath>

#include "../common.h"

namespace morec {

uint64_t mixSeeds(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 31);
}

uint64_t streamSeed(uint64_t epochSeed, const EpochOptions& opt) {
  return opt.parts > 1 ? mixSeeds(epochSeed, 1000 + uint64_t(opt.part)) : epochSeed;
}

EpochBatches::EpochBatches(const SequenceData& seqs, const ModelConfig& cfg, bool packed, const EpochOptions& opt)
    : builder_(seqs, cfg.maxLen, cfg.backbone == "sasrec", packed, opt.dssmPairs),
      pairs_(cfg.backbone == "dssm" && opt.dssmPairs),
      rank_(opt.rank),
      world_(opt.worldSize),
      sampler_(cfg.numItems),
      inBatch_(opt.inBatchLoss) {
  const uint64_t epochSeed = mixSeeds(uint64_t(cfg.seed), uint64_t(opt.epoch));
  std::mt19937_64 shuffleRng(mixSeeds(epochSeed, 2));
  negativeRng_.seed(mixSeeds(streamSeed(epochSeed, opt), 3));
  rows_ = builder_.trainingRows();
  if (rows_.empty())
    throw invalidArg(cfg.backbone == "sasrec"
                         ? "no user has a training prefix of at least 2 items (sequences need >= 4 items)"
                         : "no user has a training prefix (sequences need >= 3 items)");
  std::shuffle(rows_.begin(), rows_.end(), shuffleRng);
  const int64_t n = int64_t(rows_.size()), bs = opt.batchSize;
  const bool bucket = opt.bucketByLength && !(cfg.backbone == "dssm" && opt.dssmPairs);  // pairs: all length 1
  if (bucket) {
    // Sort windows of 50 batches by length, then shuffle the batch order: batches stay random in content
    // across epochs but hold users of similar length, so little compute goes to padding.
    const int64_t window = bs * 50;
    for (int64_t w = 0; w < n; w += window) {
      auto e = rows_.begin() + std::min(n, w + window);
      std::stable_sort(rows_.begin() + w, e, [&](const TrainingRow& a, const TrainingRow& b) {
        return builder_.trainingPositions(a.user) < builder_.trainingPositions(b.user);
      });
    }
  }
  for (int64_t b = 0; b < n; b += bs) batches_.emplace_back(b, std::min(n, b + bs));
  if (bucket) std::shuffle(batches_.begin(), batches_.end(), shuffleRng);
  if (opt.parts > 1) {
    // The same shuffle for every part; part p trains batches [p N / parts, (p + 1) N / parts).
    const int64_t all = int64_t(batches_.size());
    const int64_t b = opt.part * all / opt.parts, e = (opt.part + 1) * all / opt.parts;
    batches_ = std::vector<std::pair<int64_t, int64_t>>(batches_.begin() + b, batches_.begin() + e);
    if (batches_.empty()) throw invalidArg("part " + std::to_string(opt.part) + " of " + std::to_string(opt.parts) + " holds no batch (the epoch has " + std::to_string(all) + ")");
  }
  if (opt.maxBatches > 0 && int64_t(batches_.size()) > opt.maxBatches) batches_.resize(size_t(opt.maxBatches));
}

std::pair<int64_t, int64_t> EpochBatches::shard(int64_t i) const {
  const auto [b, e] = batches_[size_t(i)];
  if (world_ == 1) return {b, e};
  return {b + rank_ * (e - b) / world_, b + (rank_ + 1) * (e - b) / world_};
}

int64_t EpochBatches::positionsOf(int64_t begin, int64_t end) const {
  if (pairs_) return end - begin;
  int64_t n = 0;
  for (int64_t r = begin; r < end; ++r) n += builder_.trainingPositions(rows_[size_t(r)].user);
  return n;
}

int64_t EpochBatches::positionsIn(int64_t i) const {
  return positionsOf(batches_[size_t(i)].first, batches_[size_t(i)].second);
}

double EpochBatches::lossShare(int64_t i) const {
  if (world_ == 1) return 1.0;
  const auto [b, e] = shard(i);
  return double(positionsOf(b, e)) / double(positionsIn(i));
}

Batch EpochBatches::build(int64_t i) {
  const auto [b, e] = batches_[size_t(i)];
  if (world_ == 1) return builder_.training(rows_.data() + b, e - b, sampler_, negativeRng_, inBatch_);
  const auto [sb, se] = shard(i);
  if (!inBatch_) builder_.skipNegatives(rows_.data() + b, sb - b, sampler_, negativeRng_);
  Batch out = builder_.training(rows_.data() + sb, se - sb, sampler_, negativeRng_, inBatch_);
  if (!inBatch_) builder_.skipNegatives(rows_.data() + se, e - se, sampler_, negativeRng_);
  return out;
}

torch::Tensor EpochBatches::logPopularity(const SequenceData& seqs) {
  std::vector<double> counts(size_t(seqs.numItems + 1), 0.0);
  double total = 0.0;
  for (int64_t u = 0; u < seqs.users(); ++u) {
    const int32_t* s = seqs.begin(u);
    for (int64_t k = 0; k < seqs.length(u) - 2; ++k) {
      counts[size_t(s[k])] += 1.0;
      total += 1.0;
    }
  }
  auto out = torch::zeros({seqs.numItems + 1}, torch::kFloat);
  float* p = out.data_ptr<float>();
  // An item no prefix holds never is a candidate (candidates come from prefixes); its -inf is never read.
  for (int64_t i = 1; i <= seqs.numItems; ++i) p[i] = float(std::log(counts[size_t(i)] / std::max(total, 1.0)));
  return out;
}

}  // namespace morec
