// The item tower: how an item index becomes a d-dimensional vector. The same tower embeds the items of an
// input sequence and the targets scored against it. Implementations: learned IDs, text encoders, image
// encoders, frozen features + adapter (two-stage), and ID/modality fusion around any modality tower.
//
// The contract for heavy (encoder) towers: `embed` encodes each distinct item of its argument once and
// gathers (inputs, positives and negatives of a batch share one unique -> encode -> gather); `embedAll`
// builds the whole item table without gradients, in batches, and evaluation indexes that table for both
// history inputs and scoring instead of calling `embed` per user batch.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

#include "../item_store.h"
#include "dropout.h"
#include "model_config.h"

namespace morec {

class ItemTower : public torch::nn::Module {
 public:
  // ids: int64 item indices of any shape (0 = padding) -> [..., d]
  virtual torch::Tensor embed(const torch::Tensor& ids) = 0;
  // Vectors of every item, row 0 = padding: [numItems + 1, d]. progress(itemsDone, itemsTotal).
  virtual torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress = {}) = 0;
  // Parameters trained with the encoder learning rate (a fine-tuned modality encoder); empty for ID towers.
  virtual std::vector<torch::Tensor> encoderParameters() { return {}; }
  // Called after weights were replaced from outside (checkpoint load): drop anything derived from them.
  virtual void weightsChanged() {}
  // The dropout stream of the recommender (a tower with dropout inside draws from it).
  virtual void useDropout(Dropout* d) { dropout_ = d; }
  // The tower that holds the modality encoder (this one; fusion: the modality tower inside it).
  virtual ItemTower& modality() { return *this; }
  virtual ~ItemTower() = default;

 protected:
  // embed() of encoder towers: each distinct item of ids encoded once by encode (int64 [m] of items >= 1 ->
  // [m, d]) and gathered; item 0 (padding) is the zero vector. `like` gives d, dtype and device.
  static torch::Tensor embedEachOnce(const torch::Tensor& ids, const std::function<torch::Tensor(const torch::Tensor&)>& encode,
                                     const torch::Tensor& like);
  // embedAll() of encoder towers: items 1..numItems encoded by encode in batches of `batch` items (in
  // `order`, int64 [numItems] on like's device, when given; else 1..numItems), into a zero table of
  // numItems + 1 rows like `like` ([d, ...]: d = like.size(0)), without gradients.
  static torch::Tensor tableInBatches(int64_t numItems, int64_t batch, const torch::Tensor& like,
                                      const std::function<torch::Tensor(const torch::Tensor&)>& encode,
                                      const std::function<void(int64_t, int64_t)>& progress, const torch::Tensor& order = {});
  Dropout* dropout_ = nullptr;
};

// The tower that config.itemTower names; modality towers read their inputs from `store`. packed: encoders
// run without padding (CPU), as SASRec's packed layout.
std::shared_ptr<ItemTower> makeItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store,
                                         const torch::Device& device, bool packed);

}  // namespace morec
