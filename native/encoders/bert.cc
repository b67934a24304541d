#include "bert.h"

#include <cmath>

#include "../common.h"
#include "../models/packed_attention.h"
#include "bert_layer_checkpoint.h"

namespace morec {

static torch::nn::LayerNorm layerNorm(int64_t h, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(eps));
}

BertLayer::BertLayer(const TextTowerConfig& c)
    : hidden_(c.hidden), heads_(c.heads), hiddenP_(c.hiddenDropout), attentionP_(c.attentionDropout) {
  const int64_t H = c.hidden;
  auto attention = register_module("attention", std::make_shared<torch::nn::Module>());
  auto self = attention->register_module("self", std::make_shared<torch::nn::Module>());
  query_ = self->register_module("query", torch::nn::Linear(H, H));
  key_ = self->register_module("key", torch::nn::Linear(H, H));
  value_ = self->register_module("value", torch::nn::Linear(H, H));
  auto attentionOutput = attention->register_module("output", std::make_shared<torch::nn::Module>());
  attentionOut_ = attentionOutput->register_module("dense", torch::nn::Linear(H, H));
  attentionNorm_ = attentionOutput->register_module("LayerNorm", layerNorm(H, c.layerNormEps));
  auto intermediate = register_module("intermediate", std::make_shared<torch::nn::Module>());
  intermediate_ = intermediate->register_module("dense", torch::nn::Linear(H, c.intermediate));
  auto output = register_module("output", std::make_shared<torch::nn::Module>());
  output_ = output->register_module("dense", torch::nn::Linear(c.intermediate, H));
  outputNorm_ = output->register_module("LayerNorm", layerNorm(H, c.layerNormEps));
  // Hugging Face's initialisation: normal(0, 0.02) weights, zero biases.
  torch::NoGradGuard noGrad;
  for (auto* l : {&query_, &key_, &value_, &attentionOut_, &intermediate_, &output_}) {
    (*l)->weight.normal_(0.0, 0.02);
    (*l)->bias.zero_();
  }
}

std::pair<torch::Tensor, torch::Tensor> BertLayer::qkvProjection(bool scaleQ) const {
  const double s = scaleQ ? 1.0 / std::sqrt(double(hidden_ / heads_)) : 1.0;
  return {torch::cat({query_->weight * s, key_->weight, value_->weight}), torch::cat({query_->bias * s, key_->bias, value_->bias})};
}

torch::Tensor BertLayer::afterAttention(const torch::Tensor& flat, const torch::Tensor& context, Dropout& drop) {
  const bool training = is_training();
  auto h = attentionNorm_->forward(drop(attentionOut_->forward(context), hiddenP_, training) + flat);
  auto f = output_->forward(torch::gelu(intermediate_->forward(h)));
  return outputNorm_->forward(drop(f, hiddenP_, training) + h);
}

torch::Tensor BertLayer::forward(const torch::Tensor& x, const torch::Tensor& keyMask, Dropout& drop) {
  const int64_t n = x.size(0), T = x.size(1), dk = hidden_ / heads_;
  auto flat = x.reshape({n * T, hidden_});
  auto [w, b] = qkvProjection(true);  // one GEMM for Q, K and V
  auto qkv = torch::addmm(b, flat, w.t()).view({n, T, 3, heads_, dk}).permute({2, 0, 3, 1, 4});
  auto probs = torch::softmax(torch::matmul(qkv[0], qkv[1].transpose(-1, -2)) + keyMask, -1);  // [n, heads, T, T]
  probs = drop(probs, attentionP_, is_training());
  auto context = torch::matmul(probs, qkv[2]).permute({0, 2, 1, 3}).reshape({n * T, hidden_});
  return afterAttention(flat, context, drop).view({n, T, hidden_});
}

torch::Tensor BertLayer::forwardFirstToken(const torch::Tensor& x, const torch::Tensor& keyMask, Dropout& drop) {
  const int64_t n = x.size(0), T = x.size(1), H = hidden_, dk = hidden_ / heads_;
  auto [w, b] = qkvProjection(true);
  auto first = x.select(1, 0);  // [n, H]
  auto q = torch::addmm(b.narrow(0, 0, H), first, w.narrow(0, 0, H).t()).view({n, heads_, 1, dk});
  auto kv = torch::addmm(b.narrow(0, H, 2 * H), x.reshape({n * T, H}), w.narrow(0, H, 2 * H).t())
                .view({n, T, 2, heads_, dk})
                .permute({2, 0, 3, 1, 4});  // [2, n, heads, T, dk]
  auto probs = drop(torch::softmax(torch::matmul(q, kv[0].transpose(-1, -2)) + keyMask, -1), attentionP_, is_training());
  auto context = torch::matmul(probs, kv[1]).reshape({n, H});  // [n, heads, 1, dk] -> [n, H]
  return afterAttention(first, context, drop);
}

torch::Tensor BertLayer::forwardPacked(const torch::Tensor& x, const torch::Tensor& seqOffsets, Dropout& drop) {
  const int64_t N = x.size(0), dk = hidden_ / heads_;
  auto [w, b] = qkvProjection(true);
  auto qkv = torch::addmm(b, x, w.t()).view({N, 3, heads_, dk});
  torch::Tensor mask = torch::empty({0}, x.options());  // empty = no attention dropout
  if (is_training() && attentionP_ > 0.0)
    mask = drop.mask(PackedAttention::probabilityCount(seqOffsets, heads_), attentionP_, x.options());
  auto context = PackedAttention::apply(qkv, seqOffsets, mask, /*causal=*/false);
  return afterAttention(x, context, drop);
}

BertEncoder::BertEncoder(const TextTowerConfig& c) : c_(c) {
  embeddings_ = register_module("embeddings", std::make_shared<torch::nn::Module>());
  wordEmbeddings_ = embeddings_->register_module("word_embeddings", torch::nn::Embedding(c.vocabSize, c.hidden));
  positionEmbeddings_ =
      embeddings_->register_module("position_embeddings", torch::nn::Embedding(c.maxPositions, c.hidden));
  tokenTypeEmbeddings_ =
      embeddings_->register_module("token_type_embeddings", torch::nn::Embedding(c.typeVocabSize, c.hidden));
  embeddingNorm_ = embeddings_->register_module("LayerNorm", layerNorm(c.hidden, c.layerNormEps));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = encoder->register_module("layer", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < c.layers; ++i)
    layers_.push_back(list->register_module(std::to_string(i), std::make_shared<BertLayer>(c)));
  torch::NoGradGuard noGrad;
  for (auto* e : {&wordEmbeddings_, &positionEmbeddings_, &tokenTypeEmbeddings_}) (*e)->weight.normal_(0.0, 0.02);
  wordEmbeddings_->weight[c.padTokenId].zero_();
}

torch::Tensor BertEncoder::embed(const torch::Tensor& ids, const torch::Tensor& lengths, Dropout& drop) {
  const int64_t T = ids.size(1);
  const int64_t offset = c_.kind == "roberta" ? c_.padTokenId + 1 : 0;
  if (T + offset > c_.maxPositions)
    throw invalidArg("token sequences of " + std::to_string(T) + " exceed the encoder's " +
                                std::to_string(c_.maxPositions - offset) + " positions");
  auto positions = torch::arange(offset, offset + T, ids.options());
  auto x = wordEmbeddings_->forward(ids) + positionEmbeddings_->forward(positions).unsqueeze(0) +
           tokenTypeEmbeddings_->weight[0];
  if (c_.kind == "roberta") {
    // Padded tokens sit at position padTokenId (their outputs are not used, but match Hugging Face's).
    auto pad = torch::arange(T, ids.options()).unsqueeze(0).ge(lengths.unsqueeze(1));
    auto fix = positionEmbeddings_->weight[c_.padTokenId] - positionEmbeddings_->forward(positions).unsqueeze(0);
    x = x + fix * pad.unsqueeze(-1).to(x.scalar_type());
  }
  return drop(embeddingNorm_->forward(x), c_.hiddenDropout, is_training());
}

torch::Tensor BertEncoder::layers(torch::Tensor x, const torch::Tensor& lengths, int64_t from, int64_t to, Dropout& drop) {
  const int64_t T = x.size(1);
  auto mask = keyMask(lengths, T, x.options());
  for (int64_t i = from; i < to; ++i) x = runLayer(i, x, mask, drop, false);
  return x;
}

torch::Tensor BertEncoder::keyMask(const torch::Tensor& lengths, int64_t T, const torch::TensorOptions& options) {
  const int64_t n = lengths.size(0);
  auto pad = torch::arange(T, lengths.options()).unsqueeze(0).ge(lengths.unsqueeze(1));  // [n, T]
  return torch::zeros({n, 1, 1, T}, options).masked_fill_(pad.view({n, 1, 1, T}), -1e9);
}

torch::Tensor BertEncoder::lastLayerFirstToken(const torch::Tensor& x, const torch::Tensor& lengths, Dropout& drop) {
  return layers_.back()->forwardFirstToken(x, keyMask(lengths, x.size(1), x.options()), drop);
}

torch::Tensor BertEncoder::embedPacked(const torch::Tensor& ids, const torch::Tensor& positions, Dropout& drop) {
  const int64_t offset = c_.kind == "roberta" ? c_.padTokenId + 1 : 0;  // RoBERTa: padTokenId + 1 + index
  auto x = wordEmbeddings_->forward(ids) + positionEmbeddings_->forward(offset ? positions + offset : positions) +
           tokenTypeEmbeddings_->weight[0];
  return drop(embeddingNorm_->forward(x), c_.hiddenDropout, is_training());
}

torch::Tensor BertEncoder::layersPacked(torch::Tensor x, const torch::Tensor& seqOffsets, int64_t from, int64_t to,
                                        Dropout& drop) {
  for (int64_t i = from; i < to; ++i) x = runLayer(i, x, seqOffsets, drop, true);
  return x;
}

torch::Tensor BertEncoder::runLayer(int64_t i, const torch::Tensor& x, const torch::Tensor& aux, Dropout& drop, bool packed) {
  auto& layer = layers_[size_t(i)];
  // Checkpoint only what back-propagates: a trainable layer, or one whose input carries gradient.
  const auto anchor = layer->parameters().front();
  if (c_.gradientCheckpointing && is_training() && torch::GradMode::is_enabled() && (anchor.requires_grad() || x.requires_grad()))
    return BertLayerCheckpoint::apply(x, aux, anchor, layer.get(), &drop, packed);
  return packed ? layer->forwardPacked(x, aux, drop) : layer->forward(x, aux, drop);
}

void BertEncoder::freezeBottom(int64_t count) {
  for (auto& p : embeddings_->parameters()) p.set_requires_grad(false);
  for (int64_t i = 0; i < count && i < numLayers(); ++i)
    for (auto& p : layers_[size_t(i)]->parameters()) p.set_requires_grad(false);
}

}  // namespace morec
