#include "id_item_tower.h"

namespace morec {

IdItemTower::IdItemTower(const ModelConfig& config) {
  idEmbedding_ = register_module("id_embedding", torch::nn::Embedding(config.numItems + 1, config.d));
  {
    torch::NoGradGuard noGrad;
    torch::nn::init::xavier_normal_(idEmbedding_->weight);
  }
  if (config.backbone == "dssm" && config.dssmItemMlp && config.dssmDepth > 0) {
    mlp_ = register_module("mlp", std::make_shared<DssmMlp>(config.d, config.dssmDepth, config.dssmMlp, config.dropout));
    mlp_->resetParameters();
  }
}

torch::Tensor IdItemTower::embed(const torch::Tensor& ids) {
  auto v = idEmbedding_->forward(ids);
  return mlp_ ? mlp_->forward(v, *dropout_) : v;
}

// Without an MLP the table is the weight itself: no copy (callers under NoGradGuard only read it).
torch::Tensor IdItemTower::embedAll(const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t rows = idEmbedding_->weight.size(0);
  auto table = mlp_ ? mlp_->forward(idEmbedding_->weight, *dropout_) : idEmbedding_->weight;
  if (progress) progress(rows - 1, rows - 1);
  return table;
}

}  // namespace morec
