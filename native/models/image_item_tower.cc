#include "image_item_tower.h"

#include <cstdlib>

#include "../common.h"

namespace morec {

ImageItemTower::ImageItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store,
                               const torch::Device& device)
    : c_(config.image), store_(std::move(store)), device_(device) {
  if (!store_ || !store_->pixels.defined())
    throw invalidArg("itemTower 'image' needs an ItemStore of the items' pixels (ItemStore.fromPixels or an image store)");
  if (store_->numItems != config.numItems)
    throw invalidArg("the item store holds " + std::to_string(store_->numItems) + " items but the model has numItems " +
                     std::to_string(config.numItems));
  if (store_->height != c_.imageSize || store_->width != c_.imageSize)
    throw invalidArg("the item store's images are " + std::to_string(store_->height) + " x " + std::to_string(store_->width) +
                     " pixels but image.imageSize is " + std::to_string(c_.imageSize));
  encoder_ = register_module("encoder", makeImageEncoder(c_));
  projection_ = register_module("projection", torch::nn::Linear(encoder_->outFeatures(), config.d));
  if (c_.finetuneTopStages >= 0) encoder_->freezeBottom(frozenStages());
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  std::vector<float> scale, shift;
  for (int ch = 0; ch < 3; ++ch) {
    scale.push_back(float(1.0 / (255.0 * c_.std[ch])));
    shift.push_back(float(-c_.mean[ch] / c_.std[ch]));
  }
  scale_ = torch::tensor(scale).view({1, 3, 1, 1}).to(opts);
  shift_ = torch::tensor(shift).view({1, 3, 1, 1}).to(opts);
}

int64_t ImageItemTower::frozenStages() const {
  return c_.finetuneTopStages < 0 ? 0 : std::max<int64_t>(0, encoder_->numStages() - c_.finetuneTopStages);
}

torch::Tensor ImageItemTower::pixels(const torch::Tensor& items) const {
  // Rows are gathered on the host (the store may be a memory-mapped file far larger than the device's
  // memory); only the batch travels, as uint8, and becomes float on the device.
  auto rows = store_->pixels.index_select(0, items.to(torch::kCPU));
  return torch::addcmul(shift_, rows.to(device_, /*non_blocking=*/false).to(torch::kFloat), scale_);
}

void ImageItemTower::buildFrozenCache() {
  torch::NoGradGuard noGrad;
  const bool wasTraining = encoder_->is_training();
  encoder_->eval();  // the cached bottom runs in eval mode (BatchNorm running statistics, no drop path)
  const int64_t rows = store_->numItems + 1, F = frozenStages();
  auto first = encoder_->bottom(pixels(torch::tensor({int64_t(1)})), F, *dropout_);
  const double bytes = double(rows) * double(first.numel()) * double(first.element_size());
  const char* env = std::getenv("MOREC_FROZEN_CACHE_GIB");
  const double limit = (env ? std::atof(env) : 4.0) * double(1 << 30);
  if (bytes > limit)
    throw invalidArg("image.cacheFrozen would hold " + std::to_string(bytes / double(1 << 30)).substr(0, 5) +
                     " GiB of frozen-stage outputs (" + std::to_string(rows - 1) + " items x " + c10::str(first.sizes()) +
                     "), more than the limit of " + std::to_string(limit / double(1 << 30)).substr(0, 5) +
                     " GiB (MOREC_FROZEN_CACHE_GIB): freeze more stages, or train without cacheFrozen");
  std::vector<int64_t> shape{rows};
  for (int64_t i = 1; i < first.dim(); ++i) shape.push_back(first.size(i));
  auto cache = torch::zeros(shape, first.options());
  for (int64_t b = 1; b < rows; b += c_.encodeBatch) {
    const int64_t n = std::min(c_.encodeBatch, rows - b);
    auto items = torch::arange(b, b + n, torch::kLong);
    cache.narrow(0, b, n).copy_(encoder_->bottom(pixels(items), F, *dropout_));
  }
  if (wasTraining) encoder_->train();
  frozenCache_ = cache;
}

torch::Tensor ImageItemTower::encode(const torch::Tensor& items) {
  const bool useCache = c_.cacheFrozen && c_.finetuneTopStages >= 0 && frozenStages() > 0;
  torch::Tensor pooled;
  if (useCache) {
    if (!frozenCache_.defined()) buildFrozenCache();
    const int64_t F = frozenStages();
    pooled = encoder_->top(frozenCache_.index_select(0, items.to(frozenCache_.device())), F, *dropout_);
  } else {
    pooled = encoder_->forward(pixels(items), *dropout_);
  }
  return torch::gelu(projection_->forward(pooled));
}

torch::Tensor ImageItemTower::embed(const torch::Tensor& ids) {
  return embedEachOnce(ids, [this](const torch::Tensor& items) { return encode(items); }, projection_->weight);
}

torch::Tensor ImageItemTower::embedAll(const std::function<void(int64_t, int64_t)>& progress) {
  return tableInBatches(store_->numItems, c_.encodeBatch, projection_->weight, [this](const torch::Tensor& items) { return encode(items); }, progress);
}

torch::Tensor ImageItemTower::features(const torch::Tensor& items, bool train) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = encoder_->is_training();
  encoder_->train(train);
  auto out = encoder_->forward(pixels(items), *dropout_);
  encoder_->train(wasTraining);
  return out;
}

ImportReport ImageItemTower::importEncoder(const std::map<std::string, torch::Tensor>& stateDict, const std::string& file) {
  auto mapped = encoder_->mapStateDict(stateDict);
  std::string shape = c_.arch + " encoder (";
  for (size_t i = 0; i < c_.depths.size(); ++i) shape += (i ? "," : "depths ") + std::to_string(c_.depths[i]);
  shape += ", width " + std::to_string(c_.width) + (c_.arch == "resnet" ? ", " + c_.block + " blocks" : "") + ")";
  auto report = importMapped(*encoder_, mapped, file, "the " + shape);
  weightsChanged();
  return report;
}

}  // namespace morec
