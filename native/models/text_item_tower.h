// MoRec's text tower: a BERT/RoBERTa encoder over each item's tokens (from the item store) -> [CLS] or
// masked-mean pooling of the last layer -> Linear(hidden -> d) -> GELU. With finetuneTopLayers = n the
// embeddings and the bottom layers are frozen; with cacheFrozen their output per item is computed once
// (eval mode: no dropout inside them) and the top n layers run on it, so an epoch costs about n / L.
#pragma once

#include <map>
#include <string>

#include "../encoders/bert.h"
#include "../io/state_dict_import.h"
#include "item_tower.h"

namespace morec {

class TextItemTower : public ItemTower {
 public:
  TextItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store, const torch::Device& device,
                bool packed);
  torch::Tensor embed(const torch::Tensor& ids) override;
  torch::Tensor embedAll(const std::function<void(int64_t, int64_t)>& progress) override;
  std::vector<torch::Tensor> encoderParameters() override { return encoder_->parameters(); }
  void weightsChanged() override { frozenCache_ = torch::Tensor(); }
  // Last-layer hidden states [n, T, hidden] of items (int64 [n], each >= 1), T = their longest title;
  // eval mode, no gradients, never the frozen cache (for inspection and reference tests).
  torch::Tensor hiddenStates(const torch::Tensor& items);
  // The pooled last layer ([CLS] or masked mean, as configured) [n, hidden] of items: what the projection
  // reads, and what a frozen copy of this encoder gives the two-stage path. Eval mode, no gradients.
  torch::Tensor features(const torch::Tensor& items);
  // Loads a Hugging Face BERT/RoBERTa state dict (any of the usual layouts) into the encoder; `file` names
  // the source in errors. Throws listing missing, unexpected and mis-shaped tensors.
  ImportReport importEncoder(const std::map<std::string, torch::Tensor>& stateDict, const std::string& file);

 private:
  // Vectors of distinct items `items` (int64 [m], all >= 1) -> [m, d].
  torch::Tensor encode(const torch::Tensor& items);
  // Hidden states of `items`: padded [n, T, H] (pad rows unspecified), or packed [tokens, H] with
  // `packing` describing the layout.
  struct Packing {
    torch::Tensor index;    // int64 [tokens]: row * T + t of each real token in the [n, T] grid
    torch::Tensor offsets;  // int64 CPU [n + 1]
    torch::Tensor sequence; // int64 [tokens]: the row each token belongs to
  };
  // States after layers [.., upTo) (upTo = c_.layers: the last layer's output).
  torch::Tensor lastHidden(const torch::Tensor& items, const torch::Tensor& len, int64_t T, bool useCache, Packing* packing,
                           int64_t upTo);
  int64_t frozenLayers() const;
  // Whether a batch of these lengths runs packed (CPU, and enough of its [n, T] grid is padding).
  bool usePacked(const torch::Tensor& len, int64_t T) const;
  void buildFrozenCache();

  TextTowerConfig c_;
  std::shared_ptr<const ItemStoreData> store_;
  bool packed_;
  torch::Tensor tokens_, lengths_;  // the store's, on the model's device
  std::shared_ptr<BertEncoder> encoder_;
  torch::nn::Linear projection_{nullptr};
  torch::Tensor frozenCache_;  // [numItems + 1, maxTokens, hidden] output of the frozen bottom, or undefined
};

}  // namespace morec
