// What the image item tower needs of an image encoder (ResNet, Swin): normalized pixels -> pooled features,
// split at a stage boundary (frozen bottom, cached or not, and a trainable top), and the mapping of public
// checkpoints' tensor names (torchvision, Hugging Face, timm) onto its own. Parameter and buffer names of
// the encoder itself follow torchvision's layout, so a torchvision state dict maps one to one.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../io/state_dict_import.h"
#include "../models/dropout.h"
#include "../models/model_config.h"

namespace morec {

class ImageEncoder : public torch::nn::Module {
 public:
  // x: float [n, 3, H, W], already normalized -> pooled features [n, outFeatures()].
  torch::Tensor forward(const torch::Tensor& x, Dropout& drop) { return top(bottom(x, 0, drop), 0, drop); }
  // The stem plus stages [0, stages): any intermediate shape the encoder likes (stages = 0: the stem only;
  // the stem is part of the bottom and frozen with it).
  virtual torch::Tensor bottom(const torch::Tensor& x, int64_t stages, Dropout& drop) = 0;
  // Stages [from, numStages()) over bottom(x, from), then the final norm / pooling -> [n, outFeatures()].
  virtual torch::Tensor top(const torch::Tensor& h, int64_t from, Dropout& drop) = 0;
  virtual int64_t numStages() const = 0;
  virtual int64_t outFeatures() const = 0;
  // Freezes the stem and stages [0, count): requires_grad false (so no optimizer state); frozen BatchNorm
  // layers also keep their running statistics (eval mode) while the model trains.
  virtual void freezeBottom(int64_t count) = 0;
  // Maps a public checkpoint's state dict onto the encoder's names (parameters and floating-point buffers).
  virtual MappedStateDict mapStateDict(const std::map<std::string, torch::Tensor>& stateDict) const = 0;
  virtual ~ImageEncoder() = default;
};

// The encoder config.arch names (throws on an unknown one).
std::shared_ptr<ImageEncoder> makeImageEncoder(const ImageTowerConfig& config);

}  // namespace morec
