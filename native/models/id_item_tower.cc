#include "id_item_tower.h"

namespace morec {

IdItemTower::IdItemTower(int64_t numItems, int64_t d) {
  idEmbedding_ = register_module("id_embedding", torch::nn::Embedding(numItems + 1, d));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(idEmbedding_->weight);
}

torch::Tensor IdItemTower::embed(const torch::Tensor& ids) { return idEmbedding_->forward(ids); }

// The table is the weight itself: no copy (callers under NoGradGuard only read it).
torch::Tensor IdItemTower::embedAll(const std::function<void(int64_t, int64_t)>& progress) {
  if (progress) progress(idEmbedding_->weight.size(0) - 1, idEmbedding_->weight.size(0) - 1);
  return idEmbedding_->weight;
}

}  // namespace morec
