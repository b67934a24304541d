#include "fusion_item_tower.h"

namespace morec {

FusionItemTower::FusionItemTower(const ModelConfig& config, std::shared_ptr<ItemTower> modality)
    : cat_(config.fusion == "cat"), p_(config.dropout), modality_(std::move(modality)) {
  register_module("modality", modality_);
  idEmbedding_ = register_module("id_embedding", torch::nn::Embedding(config.numItems + 1, config.d));
  if (cat_) join_ = register_module("join", torch::nn::Linear(2 * config.d, config.d));
  mlp_ = register_module("mlp", std::make_shared<DssmMlp>(config.d, config.fusionDepth, "dropout-linear-gelu", config.dropout));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(idEmbedding_->weight);
  if (cat_) {
    torch::nn::init::xavier_normal_(join_->weight);
    join_->bias.zero_();
  }
  mlp_->resetParameters();
}

void FusionItemTower::useDropout(Dropout* d) {
  dropout_ = d;
  modality_->useDropout(d);
}

torch::Tensor FusionItemTower::fuse(const torch::Tensor& e, const torch::Tensor& m) {
  auto v = cat_ ? torch::gelu(join_->forward((*dropout_)(torch::cat({e, m}, -1), p_, is_training()))) : e + m;
  return mlp_->forward(v, *dropout_);
}

torch::Tensor FusionItemTower::embed(const torch::Tensor& ids) {
  return fuse(idEmbedding_->forward(ids), modality_->embed(ids));
}

torch::Tensor FusionItemTower::embedAll(const std::function<void(int64_t, int64_t)>& progress) {
  torch::NoGradGuard noGrad;
  auto m = modality_->embedAll(progress);
  return fuse(idEmbedding_->weight, m);
}

}  // namespace morec
