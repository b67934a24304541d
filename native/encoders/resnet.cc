#include "resnet.h"

#include <set>

#include "../common.h"

namespace morec {

namespace {

constexpr double kBatchNormEps = 1e-5;      // torchvision's nn.BatchNorm2d defaults
constexpr double kBatchNormMomentum = 0.1;

torch::nn::Conv2d makeConv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
  // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") for every conv.
  torch::NoGradGuard noGrad;
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  return conv;
}

torch::nn::BatchNorm2d makeNorm(int64_t channels) {
  // Weight 1, bias 0, running mean 0 and variance 1: libtorch's reset, as torchvision's init.
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).eps(kBatchNormEps).momentum(kBatchNormMomentum));
}

torch::Tensor conv(const torch::nn::Conv2d& c, const torch::Tensor& x, int64_t stride, int64_t padding) {
  const int64_t s[2] = {stride, stride}, p[2] = {padding, padding}, d[2] = {1, 1};
  return at::conv2d(x, c->weight, {}, s, p, d, 1);
}

// nn.BatchNorm2d.forward: batch statistics and a running-statistics update in train mode, the running
// statistics in eval mode.
torch::Tensor norm(const torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  const bool training = bn->is_training();
  if (training) bn->num_batches_tracked.add_(1);
  return at::batch_norm(x, bn->weight, bn->bias, bn->running_mean, bn->running_var, training, kBatchNormMomentum,
                        kBatchNormEps, at::globalContext().userEnabledCuDNN());
}

}  // namespace

ResNetBlock::ResNetBlock(bool bottleneck, int64_t inPlanes, int64_t planes, int64_t stride, int64_t widthPerGroup)
    : bottleneck_(bottleneck), stride_(stride), outPlanes_(planes * (bottleneck ? 4 : 1)) {
  if (bottleneck) {
    // torchvision: width = int(planes * (base_width / 64.0)) * groups, groups = 1.
    const auto width = int64_t(double(planes) * (double(widthPerGroup) / 64.0));
    if (width < 1)
      throw invalidArg("image.widthPerGroup " + std::to_string(widthPerGroup) + " leaves a bottleneck of " +
                       std::to_string(planes) + " planes with no inner channels");
    conv1_ = register_module("conv1", makeConv(inPlanes, width, 1, 1, 0));
    bn1_ = register_module("bn1", makeNorm(width));
    conv2_ = register_module("conv2", makeConv(width, width, 3, stride, 1));
    bn2_ = register_module("bn2", makeNorm(width));
    conv3_ = register_module("conv3", makeConv(width, outPlanes_, 1, 1, 0));
    bn3_ = register_module("bn3", makeNorm(outPlanes_));
  } else {
    conv1_ = register_module("conv1", makeConv(inPlanes, planes, 3, stride, 1));
    bn1_ = register_module("bn1", makeNorm(planes));
    conv2_ = register_module("conv2", makeConv(planes, planes, 3, 1, 1));
    bn2_ = register_module("bn2", makeNorm(planes));
  }
  if (stride != 1 || inPlanes != outPlanes_) {
    torch::nn::Sequential downsample;
    downConv_ = makeConv(inPlanes, outPlanes_, 1, stride, 0);
    downNorm_ = makeNorm(outPlanes_);
    downsample->push_back(downConv_);  // "downsample.0"
    downsample->push_back(downNorm_);  // "downsample.1"
    register_module("downsample", downsample);
  }
}

torch::Tensor ResNetBlock::forward(torch::Tensor x) {
  // ReLU and the residual add run in place on batch-norm outputs, as torchvision's do: batch_norm's backward
  // needs its input, not its output, so autograd's version checks pass.
  torch::Tensor out;
  if (bottleneck_) {
    out = norm(bn1_, conv(conv1_, x, 1, 0)).relu_();
    out = norm(bn2_, conv(conv2_, out, stride_, 1)).relu_();
    out = norm(bn3_, conv(conv3_, out, 1, 0));
  } else {
    out = norm(bn1_, conv(conv1_, x, stride_, 1)).relu_();
    out = norm(bn2_, conv(conv2_, out, 1, 1));
  }
  out += downConv_ ? norm(downNorm_, conv(downConv_, x, stride_, 0)) : x;
  return out.relu_();
}

std::vector<torch::nn::BatchNorm2d> ResNetBlock::norms() const {
  std::vector<torch::nn::BatchNorm2d> v = {bn1_, bn2_};
  if (bn3_) v.push_back(bn3_);
  if (downNorm_) v.push_back(downNorm_);
  return v;
}

ResNetEncoder::ResNetEncoder(const ImageTowerConfig& config) : c_(config) {
  const int64_t S = int64_t(c_.depths.size());
  if (S < 1 || S > 8)
    throw invalidArg("Expected 1 to 8 stages in image.depths for a resnet but received " + std::to_string(S));
  for (size_t i = 0; i < c_.depths.size(); ++i)
    if (c_.depths[i] < 1)
      throw invalidArg("Expected at least 1 block per stage in image.depths for a resnet but received " +
                       std::to_string(c_.depths[i]) + " at index " + std::to_string(i));
  if (c_.block != "basic" && c_.block != "bottleneck")
    throw invalidArg("Expected 'basic' or 'bottleneck' for image.block but received '" + c_.block + "'");
  const bool bottleneck = c_.block == "bottleneck";
  if (!bottleneck && c_.widthPerGroup != 64)
    throw invalidArg("Expected 64 for image.widthPerGroup with image.block 'basic' (torchvision's BasicBlock has no "
                     "inner width) but received " + std::to_string(c_.widthPerGroup));
  if (c_.width < 1) throw invalidArg("Expected a positive image.width but received " + std::to_string(c_.width));

  conv1_ = register_module("conv1", makeConv(3, c_.width, 7, 2, 3));
  bn1_ = register_module("bn1", makeNorm(c_.width));
  int64_t inPlanes = c_.width;
  for (int64_t i = 0; i < S; ++i) {
    const int64_t planes = c_.width << i, stride = i == 0 ? 1 : 2;
    torch::nn::Sequential layer;
    std::vector<std::shared_ptr<ResNetBlock>> blocks;
    for (int64_t b = 0; b < c_.depths[size_t(i)]; ++b) {
      auto block = std::make_shared<ResNetBlock>(bottleneck, inPlanes, planes, b == 0 ? stride : 1, c_.widthPerGroup);
      inPlanes = block->outPlanes();
      layer->push_back(block);  // "layer{i+1}.{b}"
      blocks.push_back(std::move(block));
    }
    register_module("layer" + std::to_string(i + 1), layer);
    stages_.push_back(std::move(blocks));
  }
  outFeatures_ = inPlanes;
  if (c_.channelsLast) {
    // As PyTorch's model.to(memory_format=torch.channels_last): oneDNN then runs NHWC convolutions without
    // reordering weights. Loading, optimizer steps and snapshots copy into the weights, so the layout stays.
    torch::NoGradGuard noGrad;
    for (auto& p : parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
  train(is_training());  // freezeBatchNorm: eval-mode normalization from the start
}

torch::Tensor ResNetEncoder::toFormat(const torch::Tensor& x) const {
  return c_.channelsLast ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

torch::Tensor ResNetEncoder::stage(int64_t i, torch::Tensor h, Dropout& drop) {
  for (auto& block : stages_[size_t(i)])
    h = c_.gradientCheckpointing && is_training() ? checkpointBlock(*block, h, drop) : block->forward(h);
  return h;
}

torch::Tensor ResNetEncoder::bottom(const torch::Tensor& x, int64_t stages, Dropout& drop) {
  if (x.dim() != 4 || x.size(1) != 3)
    throw invalidArg("the resnet encoder expects images [n, 3, H, W] but received " + c10::str(x.sizes()));
  if (stages < 0 || stages > numStages())
    throw invalidArg("resnet bottom: stages " + std::to_string(stages) + " is outside [0, " +
                     std::to_string(numStages()) + "]");
  auto h = norm(bn1_, conv(conv1_, toFormat(x), 2, 3)).relu_();
  h = at::max_pool2d(h, {3, 3}, {2, 2}, {1, 1});
  for (int64_t i = 0; i < stages; ++i) h = stage(i, std::move(h), drop);
  return h;
}

torch::Tensor ResNetEncoder::top(const torch::Tensor& h, int64_t from, Dropout& drop) {
  if (from < 0 || from > numStages())
    throw invalidArg("resnet top: from " + std::to_string(from) + " is outside [0, " + std::to_string(numStages()) +
                     "]");
  auto y = toFormat(h);
  for (int64_t i = from; i < numStages(); ++i) y = stage(i, std::move(y), drop);
  // AdaptiveAvgPool2d((1, 1)) + flatten: libtorch computes a 1x1 adaptive pool as this mean.
  return y.mean({2, 3}).contiguous();
}

void ResNetEncoder::freezeBottom(int64_t count) {
  count = std::max<int64_t>(0, std::min(count, numStages()));
  frozenStages_ = count;
  for (auto& p : conv1_->parameters()) p.set_requires_grad(false);
  for (auto& p : bn1_->parameters()) p.set_requires_grad(false);
  for (int64_t i = 0; i < count; ++i)
    for (auto& block : stages_[size_t(i)])
      for (auto& p : block->parameters()) p.set_requires_grad(false);
  train(is_training());
}

void ResNetEncoder::train(bool on) {
  torch::nn::Module::train(on);
  if (!on) return;
  if (c_.freezeBatchNorm || frozenStages_ >= 0) bn1_->eval();
  for (int64_t i = 0; i < numStages(); ++i)
    if (c_.freezeBatchNorm || i < frozenStages_)
      for (auto& block : stages_[size_t(i)])
        for (auto& bn : block->norms()) bn->eval();
}

// torchvision's state dict keys as they are; the same under a wrapper's prefix (`module.` from DataParallel /
// DistributedDataParallel, `model.`, `backbone.`, `encoder.`). timm's ResNets (resnet18 ... resnet152, the
// `a1_in1k`-style weights included) use torchvision's names (conv1, bn1, layer1..4, fc), so they map as well;
// timm's deep-stem variants (resnet50d: conv1.0 ...) do not fit and come back unexpected. The classifier (fc)
// and the integer num_batches_tracked buffers are ignored.
MappedStateDict ResNetEncoder::mapStateDict(const std::map<std::string, torch::Tensor>& stateDict) const {
  std::set<std::string> own;
  for (const auto& kv : named_parameters()) own.insert(kv.key());
  for (const auto& kv : named_buffers())
    if (kv.value().is_floating_point()) own.insert(kv.key());
  auto startsWith = [](const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; };
  auto endsWith = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  MappedStateDict m;
  for (const auto& [key, tensor] : stateDict) {
    std::string name = key;
    for (bool stripped = true; stripped && !own.count(name);) {
      stripped = false;
      for (const char* prefix : {"module.", "model.", "backbone.", "encoder."})
        if (startsWith(name, prefix)) {
          name = name.substr(std::string(prefix).size());
          stripped = true;
          break;
        }
    }
    if (own.count(name)) {
      m.tensors[name] = tensor;
      m.sourceOf[name] = key;
    } else if (startsWith(name, "fc.") || endsWith(name, ".num_batches_tracked")) {
      m.ignored.push_back(key);
    } else {
      m.unexpected.push_back(key);
    }
  }
  return m;
}

std::shared_ptr<ImageEncoder> makeResNet(const ImageTowerConfig& config) { return std::make_shared<ResNetEncoder>(config); }

}  // namespace morec
