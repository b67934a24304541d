#include "id_item_tower.h"

namespace morec {

IdItemTower::IdItemTower(int64_t numItems, int64_t d) {
  idEmbedding_ = register_module("id_embedding", torch::nn::Embedding(numItems + 1, d));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(idEmbedding_->weight);
}

torch::Tensor IdItemTower::embed(const torch::Tensor& ids) { return idEmbedding_->forward(ids); }

torch::Tensor IdItemTower::embedAll() { return idEmbedding_->weight; }

}  // namespace morec
