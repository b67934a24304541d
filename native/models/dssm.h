// DSSM's user tower: a user-ID embedding followed by an MLP of depth k (k = 0: the embedding itself).
// Hidden layers use ReLU; the last layer is linear so the user vector can take any sign, like item vectors.
#pragma once

#include <torch/torch.h>

namespace morec {

class DSSMUserTower : public torch::nn::Module {
 public:
  DSSMUserTower(int64_t numUsers, int64_t d, int64_t depth);
  torch::Tensor forward(const torch::Tensor& userIds);  // int64 [B] -> [B, d]

 private:
  torch::nn::Embedding userEmbedding_{nullptr};
  std::vector<torch::nn::Linear> mlp_;
};

}  // namespace morec
