// SASRec's user encoder: item vectors + learned positions -> LayerNorm(eps 1e-6) -> dropout -> N blocks of
// causal self-attention. Inputs are left-padded windows of width T <= maxLen; column c gets position
// maxLen - T + c, so a batch trimmed to its longest sequence computes exactly what the full window would.
// Padded keys are masked with a finite -1e9 (no NaN rows) and padded rows of the output are zeroed.
#pragma once

#include <torch/torch.h>

#include "dropout.h"
#include "transformer_block.h"

namespace morec {

class SASRecEncoder : public torch::nn::Module {
 public:
  SASRecEncoder(int64_t maxLen, int64_t d, int64_t heads, int64_t blocks, double dropout, bool gelu);
  // itemVectors: [B, T, d]; nonPad: bool [B, T] -> hidden states [B, T, d]
  torch::Tensor forward(const torch::Tensor& itemVectors, const torch::Tensor& nonPad, Dropout& drop);
  // Packed layout: itemVectors [tokens, d], positions int64 [tokens] (maxLen - n + j for token j of a
  // sequence of n), seqOffsets int64 CPU [S + 1] -> hidden states [tokens, d].
  torch::Tensor forwardPacked(const torch::Tensor& itemVectors, const torch::Tensor& positions,
                              const torch::Tensor& seqOffsets, Dropout& drop);
  int64_t maxLen() const { return maxLen_; }

 private:
  int64_t maxLen_;
  double p_;
  torch::nn::Embedding positionEmbedding_{nullptr};
  torch::nn::LayerNorm layerNorm_{nullptr};
  std::vector<std::shared_ptr<TransformerBlock>> blocks_;
};

}  // namespace morec
