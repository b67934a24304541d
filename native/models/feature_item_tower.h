// Two-stage MoRec's item tower: each item's features from a frozen encoder (the item store's float32/float16
// matrix, extracted once and cached on disk) held on the model's device -- a view of the memory-mapped cache
// on CPU, one copy on an accelerator, never copied per batch -- then the adapter: Linear(dim -> d) -> GELU and
// adapterDepth x [Dropout, Linear(d -> d), GELU] (the study's FC_Layers). Only the adapter trains.
#pragma once

#include "dssm_mlp.h"
#include "item_tower.h"

namespace morec {

class FeatureItemTower : public ItemTower {
 public:
  FeatureItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store, const torch::Device& device);
  torch::Tensor embed(const torch::Tensor& ids) override;
  torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress) override;

 private:
  torch::Tensor encode(const torch::Tensor& items);

  FeatureTowerConfig c_;
  std::shared_ptr<const ItemStoreData> store_;  // keeps a memory-mapped cache alive
  torch::Tensor features_;                      // float [numItems + 1, dim] on the model's device
  torch::nn::Linear projection_{nullptr};
  std::shared_ptr<DssmMlp> adapter_;
};

}  // namespace morec
