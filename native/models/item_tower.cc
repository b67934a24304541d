#include "item_tower.h"

#include "../common.h"
#include "../dist/item_table_shard.h"
#include "feature_item_tower.h"
#include "fusion_item_tower.h"
#include "id_item_tower.h"
#include "image_item_tower.h"
#include "text_item_tower.h"

namespace morec {

std::shared_ptr<ItemTower> makeItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store,
                                         const torch::Device& device, bool packed) {
  if (config.itemTower == "id") return std::make_shared<IdItemTower>(config);
  std::shared_ptr<ItemTower> modality;
  if (config.itemTower == "text") modality = std::make_shared<TextItemTower>(config, std::move(store), device, packed);
  else if (config.itemTower == "image") modality = std::make_shared<ImageItemTower>(config, std::move(store), device);
  else if (config.itemTower == "features") modality = std::make_shared<FeatureItemTower>(config, std::move(store), device);
  else throw invalidArg("unknown itemTower '" + config.itemTower + "'");
  if (config.fusion == "none") return modality;
  return std::make_shared<FusionItemTower>(config, std::move(modality));
}

torch::Tensor ItemTower::embedEachOnce(const torch::Tensor& ids, const std::function<torch::Tensor(const torch::Tensor&)>& encode,
                                      const torch::Tensor& like) {
  auto flat = ids.reshape({-1});
  auto [unique, inverse] = at::_unique(flat, /*sorted=*/true, /*return_inverse=*/true);
  const bool hasPad = unique.numel() > 0 && unique[0].item<int64_t>() == 0;
  auto real = hasPad ? unique.narrow(0, 1, unique.size(0) - 1) : unique;
  auto vectors = real.numel() > 0 ? encode(real) : torch::zeros({0, like.size(0)}, like.options());
  if (hasPad) vectors = torch::cat({torch::zeros({1, vectors.size(1)}, vectors.options()), vectors});
  std::vector<int64_t> shape(ids.sizes().begin(), ids.sizes().end());
  shape.push_back(vectors.size(1));
  return vectors.index_select(0, inverse.reshape({-1})).view(shape);
}

torch::Tensor ItemTower::tableInBatches(int64_t numItems, int64_t batch, const torch::Tensor& like,
                                       const std::function<torch::Tensor(const torch::Tensor&)>& encode,
                                       const std::function<void(int64_t, int64_t)>& progress, const torch::Tensor& order) {
  torch::NoGradGuard noGrad;
  const int64_t N = numItems;
  auto table = torch::zeros({N + 1, like.size(0)}, like.options());
  auto all = order.defined() ? order : torch::arange(1, N + 1, torch::TensorOptions().dtype(torch::kLong).device(like.device()));
  // Data-parallel evaluation: this rank's batches only, then the rows of every rank summed (ItemTableShard).
  ProcessGroup* group = ItemTableShard::current();
  const int64_t world = group ? group->size() : 1, rank = group ? group->rank() : 0;
  int64_t done = 0;
  for (int64_t b = 0, k = 0; b < N; b += batch, ++k) {
    if (k % world != rank) continue;
    const int64_t n = std::min(batch, N - b);
    auto items = all.narrow(0, b, n);
    table.index_copy_(0, items, encode(items));
    done += n;
    if (progress) progress(done, N);
  }
  if (group) {
    std::vector<torch::Tensor> t{table};
    group->allreduceSum(t, "gathering the item table");
    if (progress) progress(N, N);
  }
  return table;
}

}  // namespace morec
