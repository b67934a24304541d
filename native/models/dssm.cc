#include "dssm.h"

namespace morec {

DSSMUserTower::DSSMUserTower(int64_t numUsers, int64_t d, int64_t depth) {
  userEmbedding_ = register_module("user_embedding", torch::nn::Embedding(numUsers, d));
  auto list = register_module("mlp", std::make_shared<torch::nn::Module>());
  for (int64_t i = 0; i < depth; ++i) mlp_.push_back(list->register_module(std::to_string(i), torch::nn::Linear(d, d)));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(userEmbedding_->weight);
  for (auto& lin : mlp_) {
    torch::nn::init::xavier_normal_(lin->weight);
    lin->bias.zero_();
  }
}

torch::Tensor DSSMUserTower::forward(const torch::Tensor& userIds) {
  auto x = userEmbedding_->forward(userIds);
  for (size_t i = 0; i < mlp_.size(); ++i) {
    x = mlp_[i]->forward(x);
    if (i + 1 < mlp_.size()) x = torch::relu(x);
  }
  return x;
}

}  // namespace morec
