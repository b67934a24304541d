// One post-LN SASRec block as in the study's code: multi-head causal self-attention (Q/K/V/out projections
// without bias, dropout on attention probabilities and on the output) + LayerNorm, then a position-wise FFN
// (d -> 4d -> d) + LayerNorm, both LayerNorms with eps 1e-6. State-dict names: attention.{w_Q,w_K,w_V,fc},
// attention.layer_norm, feed_forward.{w_1,w_2,layer_norm}.
#pragma once

#include <torch/torch.h>

#include "dropout.h"

namespace morec {

class TransformerBlock : public torch::nn::Module {
 public:
  TransformerBlock(int64_t d, int64_t heads, double dropout, bool gelu);
  // x: [B, T, d]; mask: additive [B, 1, T, T] (0 = attend, -1e9 = blocked)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, Dropout& drop);
  // x: [tokens, d] of packed sequences delimited by seqOffsets (int64 CPU [S + 1]).
  torch::Tensor forwardPacked(const torch::Tensor& x, const torch::Tensor& seqOffsets, Dropout& drop);

 private:
  torch::Tensor qkvWeight() const;
  // The rest of the block after attention: out-projection, residual + LayerNorm, FFN, residual + LayerNorm.
  torch::Tensor afterAttention(const torch::Tensor& x, const torch::Tensor& context, Dropout& drop);
  int64_t d_, heads_;
  double p_;
  bool gelu_;
  std::shared_ptr<torch::nn::Module> attention_, feedForward_;
  torch::nn::Linear wQ_{nullptr}, wK_{nullptr}, wV_{nullptr}, fc_{nullptr}, w1_{nullptr}, w2_{nullptr};
  torch::nn::LayerNorm attnNorm_{nullptr}, ffnNorm_{nullptr};
};

}  // namespace morec
