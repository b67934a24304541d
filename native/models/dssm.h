// DSSM's user tower: a user-ID embedding followed by an MLP of depth k (k = 0: the embedding itself; the layer
// style is config.dssmMlp, see dssm_mlp.h).
#pragma once

#include <torch/torch.h>

#include "dropout.h"
#include "dssm_mlp.h"
#include "model_config.h"

namespace morec {

class DSSMUserTower : public torch::nn::Module {
 public:
  explicit DSSMUserTower(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& userIds, Dropout& drop);  // int64 [B] -> [B, d]

 private:
  torch::nn::Embedding userEmbedding_{nullptr};
  std::shared_ptr<DssmMlp> mlp_;
};

}  // namespace morec
