#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <unordered_set>

#include "../common.h"
#include "batch_builder.h"
#include "negative_sampler.h"

namespace morec {

static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 31);
}

Trainer::Trainer(Recommender& model) : model_(model) {
  std::unordered_set<const void*> encoderSet;
  for (auto& p : model.itemTower().encoderParameters()) encoderSet.insert(p.unsafeGetTensorImpl());
  ParamGroup encoder{"encoder"}, rest{"rest"};
  for (auto& kv : model.named_parameters()) {
    if (!kv.value().requires_grad()) continue;  // frozen: no optimizer state, not in optimizer checkpoints
    auto& g = encoderSet.count(kv.value().unsafeGetTensorImpl()) ? encoder : rest;
    g.paramNames.push_back(kv.key());
    g.params.push_back(kv.value());
  }
  optimizer_ = std::make_unique<AdamW>(std::vector<ParamGroup>{encoder, rest});
}

EpochResult Trainer::runEpoch(const SequenceData& seqs, const EpochOptions& opt, const EpochProgress& progress,
                              const std::atomic<bool>& cancel) {
  const auto& cfg = model_.config();
  model_.checkSequences(seqs);
  const auto t0 = std::chrono::steady_clock::now();
  useThreads(cfg.threads);
  const uint64_t epochSeed = mix(uint64_t(cfg.seed), uint64_t(opt.epoch));
  torch::manual_seed(epochSeed);
  model_.dropout().reseed(mix(epochSeed, 1));
  std::mt19937_64 shuffleRng(mix(epochSeed, 2)), negativeRng(mix(epochSeed, 3));

  const BatchBuilder builder(seqs, cfg.maxLen, cfg.backbone == "sasrec", model_.packed());
  const NegativeSampler sampler(cfg.numItems);
  std::vector<int64_t> users;
  for (int64_t u = 0; u < seqs.users(); ++u)
    if (builder.trainingPositions(u) > 0) users.push_back(u);
  if (users.empty()) throw invalidArg("no user has a training prefix of at least 2 items (sequences need >= 4 items)");
  std::shuffle(users.begin(), users.end(), shuffleRng);

  // Batches as [begin, end) ranges of `users`.
  std::vector<std::pair<int64_t, int64_t>> batches;
  const int64_t n = int64_t(users.size()), bs = opt.batchSize;
  if (opt.bucketByLength) {
    // Sort windows of 50 batches by length, then shuffle the batch order: batches stay random in content
    // across epochs but hold users of similar length, so little compute goes to padding.
    const int64_t window = bs * 50;
    for (int64_t w = 0; w < n; w += window) {
      auto e = users.begin() + std::min(n, w + window);
      std::stable_sort(users.begin() + w, e, [&](int64_t a, int64_t b) {
        return builder.trainingPositions(a) < builder.trainingPositions(b);
      });
    }
  }
  for (int64_t b = 0; b < n; b += bs) batches.emplace_back(b, std::min(n, b + bs));
  if (opt.bucketByLength) std::shuffle(batches.begin(), batches.end(), shuffleRng);
  if (opt.maxBatches > 0 && int64_t(batches.size()) > opt.maxBatches) batches.resize(size_t(opt.maxBatches));

  optimizer_->setHyper("encoder", opt.encoderLr, opt.encoderWeightDecay);
  optimizer_->setHyper("rest", opt.lr, opt.weightDecay);
  model_.train();
  EpochResult result;
  double lossSum = 0.0;
  const int64_t total = int64_t(batches.size());
  optimizer_->zeroGrad();
  try {
    for (int64_t bi = 0; bi < total; ++bi) {
      stopIfCancelled(cancel, "batch", bi, total);
      const auto [b, e] = batches[size_t(bi)];
      Batch batch = builder.training(users.data() + b, e - b, sampler, negativeRng).to(model_.device());
      auto loss = model_.trainingLoss(batch);
      const double lossValue = loss.item<double>();
      if (!std::isfinite(lossValue))
        throw MorecException("ENONFINITE", "training loss became " + std::to_string(lossValue) + " at batch " +
                                               std::to_string(bi) + " of epoch " + std::to_string(opt.epoch) +
                                               " (try a lower learning rate)");
      (opt.gradAccum > 1 ? loss / double(opt.gradAccum) : loss).backward();
      if ((bi + 1) % opt.gradAccum == 0 || bi + 1 == total) {
        optimizer_->step();
        optimizer_->zeroGrad();
        ++result.steps;
      }
      lossSum += lossValue;
      result.sequences += e - b;
      result.positions += batch.posIds.size(0);
      ++result.batches;
      if (progress && ((bi + 1) % opt.progressEvery == 0 || bi + 1 == total)) progress(bi + 1, total, lossSum / double(bi + 1));
    }
  } catch (...) {
    // Gradients of an unfinished accumulation must not leak into the next epoch's first step.
    optimizer_->zeroGrad();
    model_.eval();
    throw;
  }
  model_.eval();
  result.meanLoss = lossSum / double(std::max<int64_t>(1, result.batches));
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace morec
