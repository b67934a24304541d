// The item tower: how an item index becomes a d-dimensional vector. The same tower embeds the items of an
// input sequence and the targets scored against it. ID embeddings implement it now; text encoders, image
// encoders, frozen features + adapter and ID/modality fusion implement the same interface.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace morec {

class ItemTower : public torch::nn::Module {
 public:
  // ids: int64 item indices of any shape (0 = padding) -> [..., d]
  virtual torch::Tensor embed(const torch::Tensor& ids) = 0;
  // Vectors of every item, row 0 = padding: [numItems + 1, d]. Used for full ranking.
  virtual torch::Tensor embedAll() = 0;
  // Parameters trained with the encoder learning rate (a fine-tuned modality encoder); empty for ID towers.
  virtual std::vector<torch::Tensor> encoderParameters() { return {}; }
  virtual ~ItemTower() = default;
};

}  // namespace morec
