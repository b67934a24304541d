// The MLP of DSSM's towers (depth k; k = 0: identity). Two layer styles:
//  - "dropout-linear-gelu" (the study's code, MLP_Layers): every layer is Dropout(p) -> Linear(d, d) -> GELU,
//    the last one included;
//  - "linear-relu" (morec's earlier DSSM): Linear layers with ReLU between them, the last layer linear, no dropout.
// Linear weights Xavier-normal, biases zero. State-dict names: <prefix>.0.weight, <prefix>.0.bias, ...
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "dropout.h"

namespace morec {

class DssmMlp : public torch::nn::Module {
 public:
  DssmMlp(int64_t d, int64_t depth, const std::string& style, double dropout);
  // Xavier-normal weights, zero biases (called by the owner, after its own modules are created, so the
  // random draws keep the order of morec's earlier DSSM).
  void resetParameters();
  // x: [..., d] -> [..., d]; dropout masks come from `drop` (training mode only).
  torch::Tensor forward(const torch::Tensor& x, Dropout& drop);
  int64_t depth() const { return int64_t(layers_.size()); }

 private:
  bool paperStyle_;
  double p_;
  std::vector<torch::nn::Linear> layers_;
};

}  // namespace morec
