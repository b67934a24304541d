// ResNet image encoder: torchvision's ResNet (models/resnet.py) without its fc head. Stem conv 7x7/2 -> BN ->
// ReLU -> max-pool 3x3/2, then stages of BasicBlocks (ResNet-18/34) or Bottlenecks (ResNet-50/101/152, stride
// on the 3x3 conv: "v1.5"), then global average pooling. Modules are registered under torchvision's names
// (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, ...), so a torchvision state dict maps one to one.
// Forward passes call the functional ops on the registered tensors (conv2d, batch_norm, in-place ReLU and
// residual add, as torchvision does): no module dispatch and no allocations beyond the ops' outputs.
// channelsLast: the conv weights are stored NHWC (as model.to(memory_format=torch.channels_last)) and inputs
// are converted, so activations stay NHWC; results equal the default layout's to float rounding.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "block_checkpoint.h"
#include "image_encoder.h"

namespace morec {

// One residual block, torchvision's BasicBlock (two 3x3 convs) or Bottleneck (1x1, 3x3 with the stride, 1x1
// to planes * 4), with the downsample branch (1x1 conv with the stride + BN) when the shape changes.
class ResNetBlock : public torch::nn::Module, public RecomputableBlock {
 public:
  ResNetBlock(bool bottleneck, int64_t inPlanes, int64_t planes, int64_t stride, int64_t widthPerGroup);
  torch::Tensor forward(torch::Tensor x);
  torch::Tensor run(const torch::Tensor& x, Dropout&) override { return forward(x); }
  torch::nn::Module& blockModule() override { return *this; }
  // The block's BatchNorm layers (bn1, bn2[, bn3][, downsample.1]).
  std::vector<torch::nn::BatchNorm2d> norms() const;
  int64_t outPlanes() const { return outPlanes_; }

 private:
  bool bottleneck_;
  int64_t stride_, outPlanes_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr}, downConv_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr}, downNorm_{nullptr};
};

class ResNetEncoder final : public ImageEncoder {
 public:
  explicit ResNetEncoder(const ImageTowerConfig& config);
  torch::Tensor bottom(const torch::Tensor& x, int64_t stages, Dropout& drop) override;
  torch::Tensor top(const torch::Tensor& h, int64_t from, Dropout& drop) override;
  int64_t numStages() const override { return int64_t(stages_.size()); }
  int64_t outFeatures() const override { return outFeatures_; }
  void freezeBottom(int64_t count) override;
  MappedStateDict mapStateDict(const std::map<std::string, torch::Tensor>& stateDict) const override;
  // Module::train, then frozen BatchNorm layers (all with freezeBatchNorm; the stem's and the frozen stages'
  // after freezeBottom) back to eval mode: they normalize with, and keep, their running statistics.
  void train(bool on = true) override;

 private:
  torch::Tensor stage(int64_t i, torch::Tensor h, Dropout& drop);
  torch::Tensor toFormat(const torch::Tensor& x) const;
  ImageTowerConfig c_;
  int64_t outFeatures_ = 0;
  int64_t frozenStages_ = -1;  // -1: nothing frozen; n >= 0: the stem and stages [0, n)
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<std::vector<std::shared_ptr<ResNetBlock>>> stages_;
};

std::shared_ptr<ImageEncoder> makeResNet(const ImageTowerConfig& config);

}  // namespace morec
