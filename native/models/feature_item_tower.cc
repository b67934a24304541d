#include "feature_item_tower.h"

#include "../common.h"

namespace morec {

FeatureItemTower::FeatureItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store,
                                   const torch::Device& device)
    : c_(config.features), store_(std::move(store)) {
  if (!store_ || !store_->features.defined())
    throw invalidArg("itemTower 'features' needs an ItemStore of the items' features (ItemStore.fromFeatures or a feature cache)");
  if (store_->numItems != config.numItems)
    throw invalidArg("the item store holds " + std::to_string(store_->numItems) + " items but the model has numItems " +
                     std::to_string(config.numItems));
  if (store_->featureDim != c_.dim)
    throw invalidArg("the item store's features have " + std::to_string(store_->featureDim) + " dimensions but features.dim is " +
                     std::to_string(c_.dim));
  // float32 on CPU: the store's own memory (a view of the mapped file); otherwise one converted copy.
  features_ = store_->features.to(device, torch::kFloat);
  {
    torch::NoGradGuard noGrad;
    auto bad = torch::isfinite(features_.narrow(0, 1, config.numItems)).logical_not().any(/*dim=*/1).nonzero();
    if (bad.numel() > 0)
      throw MorecException("EFORMAT", (store_->file.empty() ? std::string("the item store") : store_->file) + ": item " +
                                          std::to_string(bad[0][0].item<int64_t>() + 1) + " has non-finite features (" +
                                          std::to_string(bad.size(0)) + " items in all): extract the features again");
  }
  projection_ = register_module("projection", torch::nn::Linear(c_.dim, config.d));
  const double p = c_.adapterDropout < 0 ? config.dropout : c_.adapterDropout;
  adapter_ = register_module("adapter", std::make_shared<DssmMlp>(config.d, c_.adapterDepth, "dropout-linear-gelu", p));
  torch::NoGradGuard noGrad;
  torch::nn::init::xavier_normal_(projection_->weight);
  projection_->bias.zero_();
  adapter_->resetParameters();
}

torch::Tensor FeatureItemTower::encode(const torch::Tensor& items) {
  auto x = features_.index_select(0, items.to(features_.device()));
  return adapter_->forward(torch::gelu(projection_->forward(x)), *dropout_);
}

torch::Tensor FeatureItemTower::embed(const torch::Tensor& ids) {
  return embedEachOnce(ids, [this](const torch::Tensor& items) { return encode(items); }, projection_->weight);
}

torch::Tensor FeatureItemTower::embedAll(const std::function<void(int64_t, int64_t)>& progress) {
  return tableInBatches(store_->numItems, c_.encodeBatch, projection_->weight, [this](const torch::Tensor& items) { return encode(items); }, progress);
}

}  // namespace morec
