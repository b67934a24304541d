#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "../common.h"
#include "epoch_batches.h"

namespace morec {

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
  const uint64_t epochSeed = mixSeeds(uint64_t(cfg.seed), uint64_t(opt.epoch));
  torch::manual_seed(streamSeed(epochSeed, opt));
  model_.dropout().reseed(mixSeeds(streamSeed(epochSeed, opt), 1));
  EpochBatches batches(seqs, cfg, model_.packed(), opt);
  const bool pairs = cfg.backbone == "dssm" && opt.dssmPairs;
  const TrainingLoss lossKind = opt.inBatchLoss ? TrainingLoss::InBatch
                                : pairs         ? TrainingLoss::BceMean
                                                : TrainingLoss::BceSumOfMeans;
  torch::Tensor logQ;
  if (opt.inBatchLoss) logQ = EpochBatches::logPopularity(seqs).to(model_.device());

  optimizer_->setHyper("encoder", opt.encoderLr, opt.encoderWeightDecay);
  optimizer_->setHyper("rest", opt.lr, opt.weightDecay);
  model_.train();
  EpochResult result;
  double lossSum = 0.0;
  const int64_t total = batches.size();
  optimizer_->zeroGrad();
  try {
    for (int64_t bi = 0; bi < total; ++bi) {
      stopIfCancelled(cancel, "batch", bi, total);
      Batch batch = batches.build(bi).to(model_.device());
      auto loss = model_.trainingLoss(batch, lossKind, logQ);
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
      result.sequences += batches.rowsIn(bi);
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
