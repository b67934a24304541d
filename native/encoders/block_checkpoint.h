// Gradient checkpointing of one encoder block (a ResNet residual block, a Swin block): the forward pass keeps
// only the block's input; the backward pass recomputes the block with gradients, replaying the same dropout
// masks (the mask counter is rewound) and restoring the block's buffers afterwards, so BatchNorm running
// statistics advance once per step as without checkpointing. Activation memory per block drops to its input,
// for about one extra forward pass.
#pragma once

#include <torch/torch.h>

#include "../models/dropout.h"

namespace morec {

class RecomputableBlock {
 public:
  virtual torch::Tensor run(const torch::Tensor& x, Dropout& drop) = 0;
  // The module whose parameters the block trains and whose buffers it updates.
  virtual torch::nn::Module& blockModule() = 0;
  virtual ~RecomputableBlock() = default;
};

// block.run(x, drop), checkpointed when gradients are being recorded and the block has a trainable parameter.
// The block and drop must outlive the backward pass (they belong to the model that runs it).
torch::Tensor checkpointBlock(RecomputableBlock& block, const torch::Tensor& x, Dropout& drop);

}  // namespace morec
