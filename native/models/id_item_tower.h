// IDRec's item tower: a learned embedding table with one row per item (row 0 = padding).
#pragma once

#include "item_tower.h"

namespace morec {

class IdItemTower : public ItemTower {
 public:
  IdItemTower(int64_t numItems, int64_t d);
  torch::Tensor embed(const torch::Tensor& ids) override;
  torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress) override;

 private:
  torch::nn::Embedding idEmbedding_{nullptr};
};

}  // namespace morec
