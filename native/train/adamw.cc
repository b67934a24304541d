#include "adamw.h"

#include <cmath>

#include "../common.h"

namespace morec {

AdamW::AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps)
    : groups_(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (auto& g : groups_) {
    expAvg_.emplace_back();
    expAvgSq_.emplace_back();
    for (auto& p : g.params) {
      expAvg_.back().push_back(torch::zeros_like(p));
      expAvgSq_.back().push_back(torch::zeros_like(p));
    }
  }
}

void AdamW::setHyper(const std::string& group, double lr, double weightDecay) {
  for (auto& g : groups_)
    if (g.name == group) {
      g.lr = lr;
      g.weightDecay = weightDecay;
    }
}

void AdamW::zeroGrad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad().zero_();
}

void AdamW::step() {
  torch::NoGradGuard noGrad;
  ++step_;
  const double bc1 = 1.0 - std::pow(beta1_, double(step_));
  const double bc2 = 1.0 - std::pow(beta2_, double(step_));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      auto& p = g.params[i];
      if (!p.grad().defined()) continue;
      const auto& grad = p.grad();
      auto& m = expAvg_[gi][i];
      auto& v = expAvgSq_[gi][i];
      if (g.weightDecay != 0.0) p.mul_(1.0 - g.lr * g.weightDecay);
      m.lerp_(grad, 1.0 - beta1_);
      v.mul_(beta2_).addcmul_(grad, grad, 1.0 - beta2_);
      auto denom = (v.sqrt() / std::sqrt(bc2)).add_(eps_);
      p.addcdiv_(m, denom, -g.lr / bc1);
    }
  }
}

std::map<std::string, torch::Tensor> AdamW::state() const {
  std::map<std::string, torch::Tensor> out;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      out[groups_[gi].paramNames[i] + ".exp_avg"] = expAvg_[gi][i];
      out[groups_[gi].paramNames[i] + ".exp_avg_sq"] = expAvgSq_[gi][i];
    }
  return out;
}

void AdamW::loadState(int64_t step, const std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard noGrad;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i)
      for (auto* pair : {&expAvg_[gi][i], &expAvgSq_[gi][i]}) {
        const std::string key = groups_[gi].paramNames[i] + (pair == &expAvg_[gi][i] ? ".exp_avg" : ".exp_avg_sq");
        auto it = state.find(key);
        if (it == state.end()) throw invalidArg("optimizer state is missing '" + key + "'");
        if (it->second.numel() != pair->numel())
          throw invalidArg("optimizer state '" + key + "' has " + std::to_string(it->second.numel()) +
                           " values but the parameter has " + std::to_string(pair->numel()));
        pair->copy_(it->second.view(pair->sizes()));
      }
  step_ = step;
}

}  // namespace morec
