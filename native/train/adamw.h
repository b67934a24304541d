// AdamW (decoupled weight decay, as torch.optim.AdamW) over named parameter groups, each with its own
// learning rate and weight decay ("encoder" vs "rest"). Its state is exposed by parameter name so that
// checkpoints can save it and a run can resume bit-for-bit.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace morec {

struct ParamGroup {
  std::string name;
  std::vector<std::string> paramNames;
  std::vector<torch::Tensor> params;
  double lr = 1e-3;
  double weightDecay = 0.0;
};

class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  void setHyper(const std::string& group, double lr, double weightDecay);
  void zeroGrad();
  void step();
  int64_t steps() const { return step_; }
  void setSteps(int64_t steps) { step_ = steps; }
  // name + ".exp_avg" / ".exp_avg_sq" -> tensor
  std::map<std::string, torch::Tensor> state() const;
  void loadState(int64_t step, const std::map<std::string, torch::Tensor>& state);

 private:
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<torch::Tensor>> expAvg_, expAvgSq_;
  double beta1_, beta2_, eps_;
  int64_t step_ = 0;
};

}  // namespace morec
