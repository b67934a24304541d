// MoRec's image tower: an image encoder (ResNet, Swin) over each item's pixels (from the item store, uint8,
// normalized on the model's device) -> pooled features -> Linear(features -> d) -> GELU. With
// finetuneTopStages = n the stem and the bottom stages are frozen; with cacheFrozen their output per item is
// computed once (eval mode) and the top n stages run on it.
#pragma once

#include <map>
#include <string>

#include "../encoders/image_encoder.h"
#include "item_tower.h"

namespace morec {

class ImageItemTower : public ItemTower {
 public:
  ImageItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store, const torch::Device& device);
  torch::Tensor embed(const torch::Tensor& ids) override;
  torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress) override;
  std::vector<torch::Tensor> encoderParameters() override { return encoder_->parameters(); }
  void weightsChanged() override { frozenCache_ = torch::Tensor(); }
  // The encoder's pooled output [n, features] for items (int64 [n], each >= 1), without gradients; train:
  // in train mode (BatchNorm statistics update), else eval mode. Never the frozen cache.
  torch::Tensor features(const torch::Tensor& items, bool train);
  // Loads a torchvision / Hugging Face / timm state dict (see the encoder's mapStateDict); `file` names the
  // source in errors. Throws listing missing, unexpected and mis-shaped tensors; all or nothing.
  ImportReport importEncoder(const std::map<std::string, torch::Tensor>& stateDict, const std::string& file);

 private:
  // Normalized float pixels of items on the model's device: [n, 3, H, W].
  torch::Tensor pixels(const torch::Tensor& items) const;
  torch::Tensor encode(const torch::Tensor& items);
  int64_t frozenStages() const;
  void buildFrozenCache();

  ImageTowerConfig c_;
  std::shared_ptr<const ItemStoreData> store_;
  torch::Device device_;
  std::shared_ptr<ImageEncoder> encoder_;
  torch::nn::Linear projection_{nullptr};
  torch::Tensor scale_, shift_;  // [1, 3, 1, 1]: x / 255 / std - mean / std in one fused multiply-add
  torch::Tensor frozenCache_;    // [numItems + 1, ...] output of the frozen bottom, or undefined
};

}  // namespace morec
