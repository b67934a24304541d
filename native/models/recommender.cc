#include "recommender.h"

#include <limits>

#include "../common.h"

namespace morec {

static torch::Device parseDevice(const std::string& name) {
  torch::Device dev(name);
  if (dev.is_cuda() && !torch::cuda::is_available())
    throw MorecException("ENODEVICE", "device '" + name + "' was requested but this libtorch build has no usable CUDA");
  return dev;
}

Recommender::Recommender(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store)
    : config_(config), device_(parseDevice(config.device)) {
  torch::manual_seed(uint64_t(config.seed));
  const bool packedLayout = config.sequenceLayout == "packed" || (config.sequenceLayout == "auto" && device_.is_cpu());
  itemTower_ = register_module("item_tower", makeItemTower(config, std::move(store), device_, packedLayout));
  itemTower_->useDropout(&dropout_);
  if (config.backbone == "sasrec") {
    sasrec_ = register_module("user_encoder", std::make_shared<SASRecEncoder>(config.maxLen, config.d, config.heads,
                                                                               config.blocks, config.dropout,
                                                                               config.activation == "gelu"));
  } else {
    dssm_ = register_module("user_tower", std::make_shared<DSSMUserTower>(config));
  }
  dropout_.reseed(uint64_t(config.seed));
  packed_ = config.backbone == "sasrec" && packedLayout;
  to(device_);
}

void Recommender::checkSequences(const SequenceData& seqs) const {
  if (seqs.numItems != config_.numItems)
    throw invalidArg("the sequences were built for " + std::to_string(seqs.numItems) +
                     " items but the model has numItems " + std::to_string(config_.numItems));
  if (config_.backbone == "dssm" && seqs.users() > config_.numUsers)
    throw invalidArg("the sequences hold " + std::to_string(seqs.users()) + " users but the dssm model has numUsers " +
                     std::to_string(config_.numUsers));
}

torch::Tensor Recommender::sequenceHidden(const torch::Tensor& inputIds) {
  TORCH_CHECK(sasrec_, "sequence hidden states exist only for the sasrec backbone");
  auto nonPad = inputIds.ne(0);
  if (!packed_) return sasrec_->forward(itemTower_->embed(inputIds), nonPad, dropout_);
  // Pack the left-padded rows, run the packed encoder, scatter back (padded rows stay zero).
  auto cpuIds = inputIds.to(torch::kCPU).contiguous();
  const int64_t B = cpuIds.size(0), T = cpuIds.size(1);
  const int64_t* ids = cpuIds.data_ptr<int64_t>();
  PackedRows rows(sasrec_->maxLen());
  for (int64_t b = 0; b < B; ++b) {
    int64_t first = 0;
    while (first < T && ids[b * T + first] == 0) ++first;
    for (int64_t t = first; t < T; ++t)
      if (ids[b * T + t] == 0) throw invalidArg("Expected left-padded rows (zeros only before the items) in inputIds");
    rows.add(ids + b * T + first, T - first);
  }
  Batch packed;
  rows.into(packed);
  packed = packed.to(device_);
  auto hidden = sasrec_->forwardPacked(itemTower_->embed(packed.inputIds), packed.positions, packed.seqOffsets, dropout_);
  auto out = torch::zeros({B * T, hidden.size(1)}, hidden.options());
  out.index_copy_(0, nonPad.view({-1}).nonzero().squeeze(1), hidden);
  return out.view({B, T, -1});
}

torch::Tensor Recommender::trainingLoss(const Batch& b, TrainingLoss loss, const torch::Tensor& logQ) {
  const bool inBatch = loss == TrainingLoss::InBatch;
  const int64_t M = b.posIds.size(0);
  // Scored items: the candidate columns (in-batch) or positives then negatives (BCE).
  const auto scoredIds = inBatch ? b.candIds : torch::cat({b.posIds, b.negIds});
  const int64_t S = scoredIds.size(0);
  torch::Tensor users;  // [M, d]
  torch::Tensor targets;  // [S, d]
  if (sasrec_ && b.packed) {
    const int64_t N = b.inputIds.size(0);
    auto all = itemTower_->embed(torch::cat({b.inputIds, scoredIds}));
    targets = all.narrow(0, N, S);
    users = sasrec_->forwardPacked(all.narrow(0, 0, N), b.positions, b.seqOffsets, dropout_);
  } else if (sasrec_) {
    const int64_t B = b.inputIds.size(0), T = b.inputIds.size(1);
    // One embedding lookup for inputs and scored items: one dense gradient instead of several.
    auto all = itemTower_->embed(torch::cat({b.inputIds.view({-1}), scoredIds}));
    auto inputs = all.narrow(0, 0, B * T).view({B, T, -1});
    targets = all.narrow(0, B * T, S);
    auto hidden = sasrec_->forward(inputs, b.nonPad, dropout_);
    users = hidden.view({B * T, -1}).index_select(0, b.validIdx);
  } else {
    targets = itemTower_->embed(scoredIds);
    users = dssm_->forward(b.userIds, dropout_).index_select(0, b.rowOfValid);
  }
  if (inBatch) {
    auto logits = torch::mm(users, targets.t()).to(torch::kFloat) - logQ.index_select(0, b.candIds).unsqueeze(0);
    auto masked = b.seenMask.index_select(0, b.rowOfValid);  // [M, C]: items the position's user has seen
    masked.index_put_({torch::arange(M, b.targetCol.options()), b.targetCol}, false);  // ... but its own positive
    logits = logits.masked_fill(masked, -std::numeric_limits<float>::infinity());
    return torch::nn::functional::cross_entropy(logits, b.targetCol);
  }
  auto logits = (users.repeat({2, 1}) * targets).sum(-1);  // [2M]: positives then negatives
  auto posLogits = logits.narrow(0, 0, M), negLogits = logits.narrow(0, M, M);
  if (loss == TrainingLoss::BceMean)
    return torch::binary_cross_entropy_with_logits(
        logits, torch::cat({torch::ones_like(posLogits), torch::zeros_like(negLogits)}));
  return torch::binary_cross_entropy_with_logits(posLogits, torch::ones_like(posLogits)) +
         torch::binary_cross_entropy_with_logits(negLogits, torch::zeros_like(negLogits));
}

torch::Tensor Recommender::userVectors(const Batch& b, const torch::Tensor& itemTable) {
  if (sasrec_ && b.packed) {
    auto hidden = sasrec_->forwardPacked(itemTable.index_select(0, b.inputIds), b.positions, b.seqOffsets, dropout_);
    return hidden.index_select(0, b.lastToken);
  }
  if (sasrec_) {
    auto hidden = sasrec_->forward(
        itemTable.index_select(0, b.inputIds.reshape({-1})).view({b.inputIds.size(0), b.inputIds.size(1), -1}),
        b.nonPad, dropout_);
    return hidden.select(1, hidden.size(1) - 1);
  }
  return dssm_->forward(b.userIds, dropout_);
}

}  // namespace morec
