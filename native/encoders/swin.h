// Swin Transformer (v1) image encoder, torchvision 0.14's `SwinTransformer` without its classification head:
// patch embedding (Conv2d patch x patch, stride patch -> NHWC -> LayerNorm), stages of Swin blocks
// (norm1 -> shifted-window attention with relative position bias -> residual with stochastic depth;
// norm2 -> Linear -> GELU(erf) -> Linear -> residual), PatchMerging between stages, final LayerNorm and the
// average over H and W -> width * 2^(S-1) features.
//
// Parameter names are torchvision's state-dict keys (`features.0.0.weight`, `features.1.0.attn.qkv.weight`,
// `features.2.reduction.weight`, `norm.weight`, ...): torchvision's features.{2i+1} are stage i's blocks and
// features.{2i} (i >= 1) the PatchMerging before stage i. morec counts that merging as part of stage i (its
// input), so "stage i" = features.{2i} (i >= 1) + features.{2i+1}, and the stem is features.0.
// `relative_position_index` is neither parameter nor buffer: a plain tensor the encoder builds itself
// (SwinWindowGeometry::relativeIndex); checkpoints' copies are ignored. freezeBottom(n) freezes the stem and
// stages [0, n) in that sense, so bottom(x, n) / top(h, n) split at the same boundary.
//
// CPU float32 window attention runs in a hand-written kernel (swin.cc); other devices and dtypes use tensor
// ops. The masks and gather indices of each feature-map size are built once and cached.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "block_checkpoint.h"
#include "image_encoder.h"

namespace morec {

// Where each token of a [H, W] feature map goes in the window-partitioned layout of one block (padding to
// window multiples, cyclic shift, partition), and the shifted-window attention mask. Built once per
// (H, W, shift, device) and kept for the encoder's lifetime.
struct SwinWindowGeometry {
  int64_t H = 0, W = 0, padH = 0, padW = 0, window = 0, shiftH = 0, shiftW = 0, numWindows = 0;
  bool padded = false;
  // int64 [numWindows * window^2]: for each windowed token of one image, its row y * W + x in the unpadded
  // map, or H * W for a padding token (a zero row).
  torch::Tensor toWindows;
  // int64 [H * W]: for each token of the map, its row in the windowed layout.
  torch::Tensor fromWindows;
  // float [numWindows, 1, N, N]: 0 or -100 (torchvision's value) between tokens of different regions of a
  // shifted window; undefined when the block does not shift.
  torch::Tensor mask;
  // int64 [N * N]: the row of the relative position bias table for each (query, key) pair of a window.
  torch::Tensor relativeIndex;
  // The windowed layout is the map itself (one window, no padding, no shift): no gather needed.
  bool identity = false;
};

// The geometries an encoder's blocks use, built on first use and kept (a few per input size).
class SwinGeometryCache {
 public:
  explicit SwinGeometryCache(int64_t window) : window_(window) {}
  const SwinWindowGeometry& get(int64_t H, int64_t W, int64_t shift, const torch::Device& device);

 private:
  int64_t window_;
  std::mutex mutex_;
  std::map<std::tuple<int64_t, int64_t, int64_t, std::string>, std::unique_ptr<SwinWindowGeometry>> cache_;
};

class SwinBlock : public torch::nn::Module, public RecomputableBlock {
 public:
  SwinBlock(int64_t dim, int64_t heads, int64_t window, int64_t shift, int64_t hidden, double eps,
            double attentionDropout, double dropPath, std::shared_ptr<SwinGeometryCache> geometries);
  // x: [B, H, W, C] contiguous -> same shape (train or eval mode as the module is).
  torch::Tensor run(const torch::Tensor& x, Dropout& drop) override;
  torch::nn::Module& blockModule() override { return *this; }

 private:
  torch::Tensor attention(const torch::Tensor& rows, int64_t B, const SwinWindowGeometry& g, Dropout& drop, bool training);
  torch::Tensor stochasticDepth(const torch::Tensor& x, Dropout& drop, bool training);
  int64_t dim_, heads_, window_, shift_;
  double attentionDropout_, dropPath_;
  std::shared_ptr<SwinGeometryCache> geometries_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
  torch::Tensor biasTable_;  // [(2w-1)^2, heads]
};

class SwinPatchMerging : public torch::nn::Module {
 public:
  SwinPatchMerging(int64_t dim, double eps);
  // [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear reduction_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
};

class SwinEncoder : public ImageEncoder {
 public:
  explicit SwinEncoder(const ImageTowerConfig& config);
  // bottom returns NHWC activations [n, H', W', C'] (stages = 0: the patch embedding's output).
  torch::Tensor bottom(const torch::Tensor& x, int64_t stages, Dropout& drop) override;
  torch::Tensor top(const torch::Tensor& h, int64_t from, Dropout& drop) override;
  int64_t numStages() const override { return int64_t(stages_.size()); }
  int64_t outFeatures() const override;
  void freezeBottom(int64_t count) override;
  MappedStateDict mapStateDict(const std::map<std::string, torch::Tensor>& stateDict) const override;

 private:
  torch::Tensor patchEmbed(const torch::Tensor& x);
  // Stage s (its merging when s >= 1, then its blocks) over NHWC h.
  torch::Tensor runStage(int64_t s, torch::Tensor h, Dropout& drop);

  ImageTowerConfig c_;
  torch::nn::Conv2d patchConv_{nullptr};
  torch::nn::LayerNorm patchNorm_{nullptr};
  std::vector<std::vector<std::shared_ptr<SwinBlock>>> stages_;
  std::vector<std::shared_ptr<SwinPatchMerging>> merges_;  // merges_[s] before stage s; merges_[0] null
  torch::nn::LayerNorm norm_{nullptr};
  std::shared_ptr<SwinGeometryCache> geometries_;
};

std::shared_ptr<ImageEncoder> makeSwin(const ImageTowerConfig& config);

}  // namespace morec
