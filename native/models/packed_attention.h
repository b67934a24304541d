// Causal multi-head self-attention over packed variable-length sequences (no padding), as a libtorch
// autograd function with a hand-written forward and backward. Sequences in SASRec batches average a few
// items while the window is 50: packing skips the padded rows and columns that the padded layout computes
// and then masks away, with identical results for the real positions.
#pragma once

#include <torch/torch.h>

namespace morec {

class PackedAttention : public torch::autograd::Function<PackedAttention> {
 public:
  // qkv: [tokens, 3, heads, dk] (Q already scaled by 1/sqrt(dk)); seqOffsets: int64 CPU [sequences + 1];
  // dropMask: scaled keep-mask over the per-sequence attention matrices (see probabilityCount), or empty;
  // causal: each token attends to itself and earlier tokens (SASRec) or to its whole sequence (BERT).
  // Returns [tokens, heads * dk].
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkv,
                               const torch::Tensor& seqOffsets, const torch::Tensor& dropMask, bool causal = true);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads);
  // Size of the attention-probability buffer: heads * sum(n^2).
  static int64_t probabilityCount(const torch::Tensor& seqOffsets, int64_t heads);
};

}  // namespace morec
