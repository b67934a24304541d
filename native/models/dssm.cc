#include "dssm.h"

namespace morec {

DSSMUserTower::DSSMUserTower(const ModelConfig& config) {
  userEmbedding_ = register_module("user_embedding", torch::nn::Embedding(config.numUsers, config.d));
  mlp_ = register_module("mlp", std::make_shared<DssmMlp>(config.d, config.dssmDepth, config.dssmMlp, config.dropout));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(userEmbedding_->weight);
  mlp_->resetParameters();
}

torch::Tensor DSSMUserTower::forward(const torch::Tensor& userIds, Dropout& drop) {
  return mlp_->forward(userEmbedding_->forward(userIds), drop);
}

}  // namespace morec
