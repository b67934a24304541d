#include "sasrec.h"

namespace morec {

SASRecEncoder::SASRecEncoder(int64_t maxLen, int64_t d, int64_t heads, int64_t blocks, double dropout, bool gelu)
    : maxLen_(maxLen), p_(dropout) {
  positionEmbedding_ = register_module("position_embedding", torch::nn::Embedding(maxLen, d));
  layerNorm_ = register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-6)));
  auto list = register_module("blocks", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < blocks; ++i)
    blocks_.push_back(list->register_module(std::to_string(i), std::make_shared<TransformerBlock>(d, heads, dropout, gelu)));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(positionEmbedding_->weight);
}

torch::Tensor SASRecEncoder::forwardPacked(const torch::Tensor& itemVectors, const torch::Tensor& positions,
                                           const torch::Tensor& seqOffsets, Dropout& drop) {
  auto x = drop(layerNorm_->forward(itemVectors + positionEmbedding_->forward(positions)), p_, is_training());
  for (auto& block : blocks_) x = block->forwardPacked(x, seqOffsets, drop);
  return x;
}

torch::Tensor SASRecEncoder::forward(const torch::Tensor& itemVectors, const torch::Tensor& nonPad, Dropout& drop) {
  const int64_t B = itemVectors.size(0), T = itemVectors.size(1);
  TORCH_CHECK(T >= 1 && T <= maxLen_, "sequence window of width ", T, " exceeds maxLen ", maxLen_);
  auto positions = positionEmbedding_->weight.narrow(0, maxLen_ - T, T);
  auto x = drop(layerNorm_->forward(itemVectors + positions), p_, is_training());
  // Additive mask [B,1,T,T]: attend to earlier-or-same, non-padded keys.
  auto causal = torch::ones({T, T}, nonPad.options()).tril();
  auto allowed = causal.unsqueeze(0) & nonPad.view({B, 1, T});
  auto mask = torch::zeros({B, 1, T, T}, itemVectors.options())
                  .masked_fill_(allowed.logical_not().unsqueeze(1), -1e9);
  for (auto& block : blocks_) x = block->forward(x, mask, drop);
  return x.masked_fill(nonPad.logical_not().unsqueeze(-1), 0.0);
}

}  // namespace morec
