// IDRec's item tower: a learned embedding table with one row per item (row 0 = padding). With DSSM and
// dssmItemMlp the ID vectors then go through an MLP of their own (the study's code, id_encoder: the same
// layer style and depth as the user tower's MLP, separate weights).
#pragma once

#include "dssm_mlp.h"
#include "item_tower.h"

namespace morec {

class IdItemTower : public ItemTower {
 public:
  explicit IdItemTower(const ModelConfig& config);
  torch::Tensor embed(const torch::Tensor& ids) override;
  torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress) override;

 private:
  torch::nn::Embedding idEmbedding_{nullptr};
  std::shared_ptr<DssmMlp> mlp_;  // null: the ID vectors themselves
};

}  // namespace morec
