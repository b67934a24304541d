// Gradient checkpointing of one BERT layer: the forward pass keeps only the layer's input; the backward pass
// recomputes the layer with gradients (replaying the same dropout masks by rewinding the mask counter) and
// back-propagates through it. Activation memory per layer drops to its input, for about one extra forward.
#pragma once

#include <torch/torch.h>

namespace morec {

class BertLayer;
class Dropout;

class BertLayerCheckpoint : public torch::autograd::Function<BertLayerCheckpoint> {
 public:
  // aux: the additive key mask [n, 1, 1, T] (padded) or seqOffsets (packed). anchor: one of the layer's
  // trainable parameters, so the output requires grad even when x does not (the first layer above frozen
  // ones); its gradient, like all the layer's, is accumulated by the recomputation. layer and drop outlive
  // the backward pass (they belong to the model that runs it).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& aux,
                               const torch::Tensor& anchor, BertLayer* layer, Dropout* drop, bool packed);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads);
};

}  // namespace morec
