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
    trainable_.push_back(kv.value());
  }
  optimizer_ = std::make_unique<AdamW>(std::vector<ParamGroup>{encoder, rest});
}

// Gradient buckets of about 4 MiB (DDP's default is 25 MiB; these models are smaller, and smaller buckets
// start sooner during backward).
static constexpr int64_t kBucketBytes = 4 << 20;

EpochResult Trainer::runEpoch(const SequenceData& seqs, const EpochOptions& options, const EpochProgress& progress,
                              const std::atomic<bool>& cancel, const std::shared_ptr<ProcessGroup>& group) {
  const auto& cfg = model_.config();
  model_.checkSequences(seqs);
  const auto t0 = std::chrono::steady_clock::now();
  useThreads(cfg.threads);
  EpochOptions opt = options;
  const bool parallel = group && group->size() > 1;
  opt.rank = parallel ? group->rank() : 0;
  opt.worldSize = parallel ? group->size() : 1;
  if (parallel && (!reducer_ || reducerGroup_ != group)) {
    reducer_.reset();
    reducer_ = std::make_unique<GradientReducer>(trainable_, group, kBucketBytes);
    reducerGroup_ = group;
  }
  if (parallel) reducer_->resetStats();
  const uint64_t epochSeed = mixSeeds(uint64_t(cfg.seed), uint64_t(opt.epoch));
  // Dropout and torch's own stream: per rank when data-parallel (each rank's rows get their own masks), the
  // one process's otherwise.
  const uint64_t rankSeed = parallel ? mixSeeds(streamSeed(epochSeed, opt), 7000 + uint64_t(opt.rank)) : streamSeed(epochSeed, opt);
  torch::manual_seed(rankSeed);
  model_.dropout().reseed(mixSeeds(rankSeed, 1));
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
  double lossSum = 0.0;       // of the global batches, up to the last optimizer step (data-parallel)
  double stepLoss = 0.0;      // this rank's weighted share of the batches since the last step
  int64_t lossBatches = 0;
  const int64_t total = batches.size();
  optimizer_->zeroGrad();
  try {
    for (int64_t bi = 0; bi < total; ++bi) {
      stopIfCancelled(cancel, "batch", bi, total);
      const bool stepEnds = (bi + 1) % opt.gradAccum == 0 || bi + 1 == total;
      if (!parallel) {
        Batch batch = batches.build(bi).to(model_.device());
        auto loss = model_.trainingLoss(batch, lossKind, logQ);
        const double lossValue = loss.item<double>();
        if (!std::isfinite(lossValue))
          throw MorecException("ENONFINITE", "training loss became " + std::to_string(lossValue) + " at batch " +
                                                 std::to_string(bi) + " of epoch " + std::to_string(opt.epoch) +
                                                 " (try a lower learning rate)");
        (opt.gradAccum > 1 ? loss / double(opt.gradAccum) : loss).backward();
        lossSum += lossValue;
        lossBatches = bi + 1;
      } else {
        // This rank's rows of the global batch; its loss weighted by its share of the batch's positions, so the
        // gradients summed across ranks are the global batch's. A rank may hold no row of a small last batch.
        Batch batch = batches.build(bi);
        const double share = batches.lossShare(bi);
        if (stepEnds) reducer_->arm();
        if (batches.shardRows(bi) > 0) {
          batch = batch.to(model_.device());
          auto loss = model_.trainingLoss(batch, lossKind, logQ);
          stepLoss += share * loss.item<double>();
          (loss * (share / double(opt.gradAccum))).backward();
        }
        if (stepEnds) {
          auto scalars = torch::tensor({stepLoss}, torch::kDouble);
          reducer_->finish(scalars);
          const double globalLoss = scalars.item<double>();
          if (!std::isfinite(globalLoss))
            throw MorecException("ENONFINITE", "training loss became " + std::to_string(globalLoss) + " in the step ending at batch " +
                                                   std::to_string(bi) + " of epoch " + std::to_string(opt.epoch) +
                                                   " (try a lower learning rate)");
          lossSum += globalLoss;
          lossBatches = bi + 1;
          stepLoss = 0.0;
        }
      }
      if (stepEnds) {
        optimizer_->step();
        optimizer_->zeroGrad();
        ++result.steps;
      }
      result.sequences += batches.rowsIn(bi);
      result.positions += batches.positionsIn(bi);
      ++result.batches;
      if (progress && ((bi + 1) % opt.progressEvery == 0 || bi + 1 == total))
        progress(bi + 1, total, lossSum / double(std::max<int64_t>(1, lossBatches)));
    }
  } catch (...) {
    // Gradients of an unfinished accumulation must not leak into the next epoch's first step.
    optimizer_->zeroGrad();
    model_.eval();
    if (parallel) {
      // The other ranks wait in a collective for this one: say why it stopped (they name it in their error).
      std::string code, message;
      describeCurrentException(code, message);
      if (code != "EDIST") group->recordFailure(code + ": " + message);
    }
    throw;
  }
  model_.eval();
  if (parallel) {
    // BatchNorm running statistics moved with each rank's own rows: their mean across ranks, so that every rank
    // evaluates (and rank 0 saves) the same model.
    std::vector<torch::Tensor> buffers;
    for (auto& kv : model_.named_buffers())
      if (kv.value().is_floating_point()) buffers.push_back(kv.value());
    if (!buffers.empty()) {
      torch::NoGradGuard noGrad;
      std::vector<torch::Tensor> parts;
      for (auto& b : buffers) parts.push_back(b.reshape({-1}));
      std::vector<torch::Tensor> flat{torch::cat(parts)};
      group->allreduceSum(flat, "averaging BatchNorm statistics");
      flat[0].div_(double(opt.worldSize));
      int64_t offset = 0;
      for (auto& b : buffers) {
        b.copy_(flat[0].narrow(0, offset, b.numel()).view(b.sizes()));
        offset += b.numel();
      }
    }
  }
  result.meanLoss = lossSum / double(std::max<int64_t>(1, result.batches));
  if (parallel) {
    const auto& st = reducer_->stats();
    result.allreduceBytesPerStep = st.bytesPerStep;
    result.allreduceBuckets = st.buckets;
    result.bucketsStartedInBackward = st.startedInBackward;
    result.allreduceWaitSeconds = st.waitSeconds;
    result.allreduceSeconds = st.reduceSeconds;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace morec
