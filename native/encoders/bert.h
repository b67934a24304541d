// BERT and RoBERTa encoders (the Hugging Face architectures): word + position + token-type embeddings ->
// LayerNorm -> dropout, then post-LN layers of biased multi-head self-attention over non-padded keys and an
// exact-erf GELU feed-forward. Parameter names follow Hugging Face's BertModel/RobertaModel layout
// (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...), so a public
// checkpoint maps onto it by name. RoBERTa differs only in its position ids: padTokenId + 1 + index.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "../models/dropout.h"
#include "../models/model_config.h"

namespace morec {

class BertLayer : public torch::nn::Module {
 public:
  explicit BertLayer(const TextTowerConfig& c);
  // x: [n, T, H]; keyMask: additive [n, 1, 1, T] (0 = attend, -1e9 = padding)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keyMask, Dropout& drop);
  // Packed layout (no padding, CPU): x [tokens, H] of sequences delimited by seqOffsets (int64 CPU [S + 1]).
  torch::Tensor forwardPacked(const torch::Tensor& x, const torch::Tensor& seqOffsets, Dropout& drop);
  // The output at the first token only ([n, H]), attending over all of x [n, T, H] (keyMask as forward).
  torch::Tensor forwardFirstToken(const torch::Tensor& x, const torch::Tensor& keyMask, Dropout& drop);

 private:
  // Q, K and V as one GEMM's weight and bias; `scaleQ` folds the 1/sqrt(dk) temperature into Q's rows.
  std::pair<torch::Tensor, torch::Tensor> qkvProjection(bool scaleQ) const;
  // Out-projection, residual + LayerNorm, FFN, residual + LayerNorm over flat [tokens, H].
  torch::Tensor afterAttention(const torch::Tensor& flat, const torch::Tensor& context, Dropout& drop);
  int64_t hidden_, heads_;
  double hiddenP_, attentionP_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, attentionOut_{nullptr}, intermediate_{nullptr},
      output_{nullptr};
  torch::nn::LayerNorm attentionNorm_{nullptr}, outputNorm_{nullptr};
};

class BertEncoder : public torch::nn::Module {
 public:
  explicit BertEncoder(const TextTowerConfig& c);
  // Embeddings of token ids [n, T] whose first lengths[i] tokens are real (right padding) -> [n, T, H].
  torch::Tensor embed(const torch::Tensor& ids, const torch::Tensor& lengths, Dropout& drop);
  // Layers [from, to) over hidden states [n, T, H] with the same lengths.
  torch::Tensor layers(torch::Tensor x, const torch::Tensor& lengths, int64_t from, int64_t to, Dropout& drop);
  // Packed layout: ids and positions (0-based within each sequence) [tokens] -> [tokens, H].
  torch::Tensor embedPacked(const torch::Tensor& ids, const torch::Tensor& positions, Dropout& drop);
  torch::Tensor layersPacked(torch::Tensor x, const torch::Tensor& seqOffsets, int64_t from, int64_t to, Dropout& drop);
  // The last layer's output at the first token ([CLS]) of padded states x [n, T, H] -> [n, H].
  torch::Tensor lastLayerFirstToken(const torch::Tensor& x, const torch::Tensor& lengths, Dropout& drop);
  int64_t numLayers() const { return int64_t(layers_.size()); }
  // Freezes the embeddings and layers [0, count): no gradient, so no optimizer state.
  void freezeBottom(int64_t count);

 private:
  // Layer i, through gradient checkpointing when configured and training.
  static torch::Tensor keyMask(const torch::Tensor& lengths, int64_t T, const torch::TensorOptions& options);
  torch::Tensor runLayer(int64_t i, const torch::Tensor& x, const torch::Tensor& aux, Dropout& drop, bool packed);
  TextTowerConfig c_;
  std::shared_ptr<torch::nn::Module> embeddings_;
  torch::nn::Embedding wordEmbeddings_{nullptr}, positionEmbeddings_{nullptr}, tokenTypeEmbeddings_{nullptr};
  torch::nn::LayerNorm embeddingNorm_{nullptr};
  std::vector<std::shared_ptr<BertLayer>> layers_;
};

}  // namespace morec
