#include "item_tower.h"

#include "../common.h"
#include "id_item_tower.h"
#include "text_item_tower.h"

namespace morec {

std::shared_ptr<ItemTower> makeItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store,
                                         const torch::Device& device, bool packed) {
  if (config.itemTower == "id") return std::make_shared<IdItemTower>(config);
  if (config.itemTower == "text") return std::make_shared<TextItemTower>(config, std::move(store), device, packed);
  throw invalidArg("unknown itemTower '" + config.itemTower + "'");
}

}  // namespace morec
