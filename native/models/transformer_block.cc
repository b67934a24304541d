#include "transformer_block.h"

#include <cmath>

#include "packed_attention.h"

namespace morec {

static torch::nn::LayerNorm layerNorm(int64_t d) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-6));
}

TransformerBlock::TransformerBlock(int64_t d, int64_t heads, double dropout, bool gelu)
    : d_(d), heads_(heads), p_(dropout), gelu_(gelu) {
  attention_ = register_module("attention", std::make_shared<torch::nn::Module>());
  wQ_ = attention_->register_module("w_Q", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  wK_ = attention_->register_module("w_K", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  wV_ = attention_->register_module("w_V", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  fc_ = attention_->register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  attnNorm_ = attention_->register_module("layer_norm", layerNorm(d));
  feedForward_ = register_module("feed_forward", std::make_shared<torch::nn::Module>());
  w1_ = feedForward_->register_module("w_1", torch::nn::Linear(d, 4 * d));
  w2_ = feedForward_->register_module("w_2", torch::nn::Linear(4 * d, d));
  ffnNorm_ = feedForward_->register_module("layer_norm", layerNorm(d));
  torch::NoGradGuard noGrad;
  for (auto* lin : {&wQ_, &wK_, &wV_, &fc_, &w1_, &w2_}) {
    torch::nn::init::xavier_normal_((*lin)->weight);
    if ((*lin)->bias.defined()) (*lin)->bias.zero_();
  }
}

// One GEMM for Q, K and V; the 1/sqrt(dk) temperature is folded into Q's rows.
torch::Tensor TransformerBlock::qkvWeight() const {
  const double dk = double(d_ / heads_);
  return torch::cat({wQ_->weight * (1.0 / std::sqrt(dk)), wK_->weight, wV_->weight}, 0);
}

torch::Tensor TransformerBlock::forwardPacked(const torch::Tensor& x, const torch::Tensor& seqOffsets, Dropout& drop) {
  const int64_t N = x.size(0), dk = d_ / heads_;
  auto qkv = torch::linear(x, qkvWeight()).view({N, 3, heads_, dk});
  torch::Tensor mask = torch::empty({0}, x.options());  // empty = no dropout
  if (is_training() && p_ > 0.0) mask = drop.mask(PackedAttention::probabilityCount(seqOffsets, heads_), p_, x.options());
  auto context = PackedAttention::apply(qkv, seqOffsets, mask);
  return afterAttention(x, context, drop);
}

torch::Tensor TransformerBlock::forward(const torch::Tensor& x, const torch::Tensor& mask, Dropout& drop) {
  const int64_t B = x.size(0), T = x.size(1), dk = d_ / heads_;
  auto qkv = torch::linear(x, qkvWeight()).view({B, T, 3, heads_, dk}).permute({2, 0, 3, 1, 4});  // [3,B,h,T,dk]
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  auto scores = torch::matmul(q, k.transpose(-2, -1)) + mask;  // [B,h,T,T]
  auto probs = drop(torch::softmax(scores, -1), p_, is_training());
  auto context = torch::matmul(probs, v).transpose(1, 2).reshape({B, T, d_});
  return afterAttention(x, context, drop);
}

torch::Tensor TransformerBlock::afterAttention(const torch::Tensor& x, const torch::Tensor& context, Dropout& drop) {
  auto h = attnNorm_->forward(x + drop(fc_->forward(context), p_, is_training()));
  auto f = w1_->forward(h);
  f = gelu_ ? torch::gelu(f) : torch::relu(f);
  f = drop(w2_->forward(f), p_, is_training());
  return ffnNorm_->forward(h + f);
}

}  // namespace morec
