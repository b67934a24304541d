// ID + modality fusion (the study's id_plus_mo towers): a learned ID embedding e and the vector m of a modality
// tower (text, image or features; end-to-end or two-stage) joined by ADD (e + m) or CAT (Dropout -> Linear(2d
// -> d) -> GELU over [e, m]), then fusionDepth x [Dropout, Linear(d -> d), GELU]. The modality tower keeps
// its own encoder, learning rate, freezing and checkpoint import (modality()).
#pragma once

#include "dssm_mlp.h"
#include "item_tower.h"

namespace morec {

class FusionItemTower : public ItemTower {
 public:
  FusionItemTower(const ModelConfig& config, std::shared_ptr<ItemTower> modality);
  torch::Tensor embed(const torch::Tensor& ids) override;
  torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress) override;
  std::vector<torch::Tensor> encoderParameters() override { return modality_->encoderParameters(); }
  void weightsChanged() override { modality_->weightsChanged(); }
  void useDropout(Dropout* d) override;
  ItemTower& modality() override { return *modality_; }

 private:
  // e, m: [..., d] -> fused [..., d]
  torch::Tensor fuse(const torch::Tensor& e, const torch::Tensor& m);

  bool cat_;
  double p_;
  std::shared_ptr<ItemTower> modality_;
  torch::nn::Embedding idEmbedding_{nullptr};
  torch::nn::Linear join_{nullptr};  // CAT only
  std::shared_ptr<DssmMlp> mlp_;
};

}  // namespace morec
