#include "gradient_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>

#include "../common.h"

namespace morec {

using Clock = std::chrono::steady_clock;

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, std::shared_ptr<ProcessGroup> group, int64_t bucketBytes)
    : params_(std::move(params)), group_(std::move(group)) {
  const size_t P = params_.size();
  bucketOf_.assign(P, 0);
  copied_.assign(P, 0);
  // Reverse order: the last layers' gradients are ready first.
  for (size_t k = P; k-- > 0;) {
    const auto& p = params_[k];
    const int64_t bytes = p.numel() * int64_t(p.element_size());
    const bool fits = !buckets_.empty() && buckets_.back().offsets.back() * int64_t(p.element_size()) + bytes <= bucketBytes &&
                      params_[buckets_.back().params.front()].scalar_type() == p.scalar_type() &&
                      params_[buckets_.back().params.front()].device() == p.device();
    if (!fits) buckets_.push_back(Bucket{{}, {0}, {}, 0, nullptr});
    auto& b = buckets_.back();
    b.params.push_back(k);
    b.offsets.push_back(b.offsets.back() + p.numel());
    bucketOf_[k] = buckets_.size() - 1;
  }
  for (auto& b : buckets_) {
    const auto& first = params_[b.params.front()];
    b.flat = torch::zeros({b.offsets.back()}, first.options().requires_grad(false));
    stats_.bytesPerStep += b.flat.numel() * int64_t(b.flat.element_size());
  }
  stats_.buckets = int64_t(buckets_.size());
  for (size_t k = 0; k < P; ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    hookKeys_.push_back(acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list& inputs) {
          onGradient(k, !inputs.empty() && inputs[0].defined());
          return outputs;
        })));
    accumulators_.push_back(std::move(acc));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < accumulators_.size(); ++k) accumulators_[k]->del_post_hook(hookKeys_[k]);
}

void GradientReducer::resetStats() {
  const auto bytes = stats_.bytesPerStep;
  stats_ = ReducerStats{};
  stats_.bytesPerStep = bytes;
  stats_.buckets = int64_t(buckets_.size());
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
  refired_ = false;
  nextLaunch_ = 0;
  std::fill(copied_.begin(), copied_.end(), 0);
  for (auto& b : buckets_) {
    b.pending = int64_t(b.params.size());
    b.work = nullptr;
  }
}

void GradientReducer::copyIn(size_t k) {
  auto& b = buckets_[bucketOf_[k]];
  size_t j = 0;
  while (b.params[j] != k) ++j;
  auto slice = b.flat.narrow(0, b.offsets[j], b.offsets[j + 1] - b.offsets[j]);
  const auto& g = params_[k].grad();
  if (g.defined()) slice.copy_(g.reshape({-1}));
  else slice.zero_();
}

void GradientReducer::launch(Bucket& b) {
  b.work = group_->startAllreduceSum(b.flat, "the gradient all-reduce");
}

// Autograd hook, after param k's gradient was accumulated into .grad (the thread running backward).
void GradientReducer::onGradient(size_t k, bool defined) {
  if (!defined) return;  // nothing was accumulated (e.g. the anchor input of a checkpointed block)
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;
  if (copied_[k]) {
    refired_ = true;
    return;
  }
  if (!overlap_) return;
  copyIn(k);
  copied_[k] = 1;
  --buckets_[bucketOf_[k]].pending;
  // Buckets start in index order on every rank (collectives pair up by the order they are issued).
  while (nextLaunch_ < buckets_.size() && buckets_[nextLaunch_].pending == 0) {
    launch(buckets_[nextLaunch_++]);
    ++stats_.startedInBackward;
  }
}

void GradientReducer::finish(torch::Tensor& scalars) {
  const auto t0 = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  const int64_t S = scalars.numel(), P = int64_t(params_.size());
  // [scalars, which parameters have a gradient here, whether a gradient was accumulated twice]: summed, so
  // every rank knows whether any rank had a gradient, and all take the same path below.
  auto meta = torch::zeros({S + P + 1}, torch::kDouble);
  meta.narrow(0, 0, S).copy_(scalars);
  double* has = meta.data_ptr<double>() + S;
  for (int64_t k = 0; k < P; ++k) has[k] = params_[size_t(k)].grad().defined() ? 1.0 : 0.0;
  has[P] = refired_ ? 1.0 : 0.0;
  while (nextLaunch_ < buckets_.size()) {
    auto& b = buckets_[nextLaunch_++];
    for (size_t k : b.params)
      if (!copied_[k]) copyIn(k);
    launch(b);
  }
  std::vector<torch::Tensor> metaList{meta};
  const auto w0 = Clock::now();
  group_->allreduceSum(metaList, "the loss all-reduce");
  for (auto& b : buckets_) group_->wait(b.work);
  if (has[P] > 0.0) {
    // A gradient was accumulated again after its bucket had started (re-entrant checkpointing): reduce every
    // bucket again from .grad, and from now on start nothing during backward.
    for (auto& b : buckets_) {
      for (size_t k : b.params) copyIn(k);
      launch(b);
    }
    for (auto& b : buckets_) group_->wait(b.work);
    overlap_ = false;
  }
  stats_.waitSeconds += std::chrono::duration<double>(Clock::now() - w0).count();
  scalars.copy_(meta.narrow(0, 0, S));
  for (auto& b : buckets_) {
    for (size_t j = 0; j < b.params.size(); ++j) {
      const size_t k = b.params[j];
      auto& p = params_[k];
      if (has[k] == 0.0) continue;  // no rank had a gradient: none, as in one process
      auto slice = b.flat.narrow(0, b.offsets[j], b.offsets[j + 1] - b.offsets[j]).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(slice);
      else p.mutable_grad() = slice.clone();
    }
    b.work = nullptr;
  }
  ++stats_.steps;
  stats_.reduceSeconds += std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace morec
