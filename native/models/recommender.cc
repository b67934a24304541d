#include "recommender.h"

#include "../common.h"
#include "id_item_tower.h"

namespace morec {

static torch::Device parseDevice(const std::string& name) {
  torch::Device dev(name);
  if (dev.is_cuda() && !torch::cuda::is_available())
    throw MorecException("ENODEVICE", "device '" + name + "' was requested but this libtorch build has no usable CUDA");
  return dev;
}

Recommender::Recommender(const ModelConfig& config) : config_(config), device_(parseDevice(config.device)) {
  torch::manual_seed(uint64_t(config.seed));
  itemTower_ = register_module("item_tower", std::make_shared<IdItemTower>(config.numItems, config.d));
  if (config.backbone == "sasrec") {
    sasrec_ = register_module("user_encoder", std::make_shared<SASRecEncoder>(config.maxLen, config.d, config.heads,
                                                                               config.blocks, config.dropout,
                                                                               config.activation == "gelu"));
  } else {
    dssm_ = register_module("user_tower", std::make_shared<DSSMUserTower>(config.numUsers, config.d, config.dssmDepth));
  }
  dropout_.reseed(uint64_t(config.seed));
  to(device_);
}

torch::Tensor Recommender::sequenceHidden(const torch::Tensor& inputIds) {
  TORCH_CHECK(sasrec_, "sequence hidden states exist only for the sasrec backbone");
  auto nonPad = inputIds.ne(0);
  return sasrec_->forward(itemTower_->embed(inputIds), nonPad, dropout_);
}

torch::Tensor Recommender::trainingLoss(const Batch& b) {
  const int64_t M = b.posIds.size(0);
  torch::Tensor users;  // [M, d]
  torch::Tensor targets;
  if (sasrec_) {
    const int64_t B = b.inputIds.size(0), T = b.inputIds.size(1);
    // One embedding lookup for inputs, positives and negatives: one dense gradient instead of three.
    auto all = itemTower_->embed(torch::cat({b.inputIds.view({-1}), b.posIds, b.negIds}));
    auto inputs = all.narrow(0, 0, B * T).view({B, T, -1});
    targets = all.narrow(0, B * T, 2 * M);
    auto hidden = sasrec_->forward(inputs, b.nonPad, dropout_);
    users = hidden.view({B * T, -1}).index_select(0, b.validIdx);
  } else {
    targets = itemTower_->embed(torch::cat({b.posIds, b.negIds}));
    users = dssm_->forward(b.userIds).index_select(0, b.rowOfValid);
  }
  auto logits = (users.repeat({2, 1}) * targets).sum(-1);  // [2M]: positives then negatives
  auto posLogits = logits.narrow(0, 0, M), negLogits = logits.narrow(0, M, M);
  return torch::binary_cross_entropy_with_logits(posLogits, torch::ones_like(posLogits)) +
         torch::binary_cross_entropy_with_logits(negLogits, torch::zeros_like(negLogits));
}

torch::Tensor Recommender::userVectors(const Batch& b) {
  if (sasrec_) {
    auto hidden = sasrec_->forward(itemTower_->embed(b.inputIds), b.nonPad, dropout_);
    return hidden.select(1, hidden.size(1) - 1);
  }
  return dssm_->forward(b.userIds);
}

}  // namespace morec
