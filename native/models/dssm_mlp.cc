#include "dssm_mlp.h"

namespace morec {

DssmMlp::DssmMlp(int64_t d, int64_t depth, const std::string& style, double dropout)
    : paperStyle_(style == "dropout-linear-gelu"), p_(dropout) {
  for (int64_t i = 0; i < depth; ++i) layers_.push_back(register_module(std::to_string(i), torch::nn::Linear(d, d)));
}

void DssmMlp::resetParameters() {
  torch::NoGradGuard noGrad;
  for (auto& lin : layers_) {
    torch::nn::init::xavier_normal_(lin->weight);
    lin->bias.zero_();
  }
}

torch::Tensor DssmMlp::forward(const torch::Tensor& x, Dropout& drop) {
  auto h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (paperStyle_) {
      h = torch::gelu(layers_[i]->forward(drop(h, p_, is_training())));
    } else {
      h = layers_[i]->forward(h);
      if (i + 1 < layers_.size()) h = torch::relu(h);
    }
  }
  return h;
}

}  // namespace morec
