// Dropout whose masks come from a counter-based hash (splitmix64) instead of libtorch's bernoulli_, which
// profiles at 21-38% of a SASRec step on CPU. The mask of call k depends only on (seed, k, element index):
// the same on any thread count, so training is reproducible. CUDA tensors use libtorch's own dropout.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace morec {

class Dropout {
 public:
  void reseed(uint64_t seed) { seed_ = seed; counter_ = 0; }
  // Position in the mask stream: gradient checkpointing rewinds it to replay a layer's exact masks.
  uint64_t counter() const { return counter_; }
  void setCounter(uint64_t c) { counter_ = c; }
  torch::Tensor operator()(const torch::Tensor& x, double p, bool training);
  // The scaled keep-mask (0 or 1/(1-p)) of `numel` elements, for kernels that apply it themselves.
  torch::Tensor mask(int64_t numel, double p, const torch::TensorOptions& options);

 private:
  uint64_t seed_ = 0;
  uint64_t counter_ = 0;
};

}  // namespace morec
