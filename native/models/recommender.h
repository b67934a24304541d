// A recommender = a user encoder (SASRec over the item sequence, or DSSM's user tower) scored by dot product
// against an item tower. It computes the training loss of a batch and the user vectors used for ranking.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "../sequence_data.h"
#include "../train/batch.h"
#include "dropout.h"
#include "dssm.h"
#include "item_tower.h"
#include "model_config.h"
#include "sasrec.h"

namespace morec {

enum class TrainingLoss {
  BceSumOfMeans,  // mean BCE of the positives + mean BCE of the negatives (the study's SASRec)
  BceMean,        // one BCE mean over each position's 1 + 1 logits (the study's DSSM): half the above
  InBatch,        // softmax cross-entropy over the batch's candidates, logits - log p(item), own history masked
};

class Recommender : public torch::nn::Module {
 public:
  // store: per-item inputs of modality towers (may be null for the ID tower).
  Recommender(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store);

  // The loss of a training batch. BCE with logits: positives labelled 1, negatives labelled 0, over the
  // non-padded positions. InBatch: each position's logits against every candidate column of the batch
  // (Batch::candIds) minus logQ[item] (logQ: [numItems + 1], log of the item's popularity), columns whose item
  // is in the user's training prefix masked except the position's own positive, cross-entropy with that
  // positive, mean over positions (the study's in-batch debiased loss).
  torch::Tensor trainingLoss(const Batch& batch, TrainingLoss loss, const torch::Tensor& logQ = {});
  // One vector per batch row: SASRec's hidden state at the last column; DSSM's user tower output. History
  // items are looked up in `itemTable` (embedAll's output, built once per evaluation), not re-encoded.
  torch::Tensor userVectors(const Batch& batch, const torch::Tensor& itemTable);
  // SASRec hidden states [B, T, d] of left-padded windows (padded rows zero).
  torch::Tensor sequenceHidden(const torch::Tensor& inputIds);

  // Throws unless the sequences fit this model (same item count; DSSM: no more users than rows).
  void checkSequences(const SequenceData& seqs) const;

  ItemTower& itemTower() { return *itemTower_; }
  const ModelConfig& config() const { return config_; }
  const torch::Device& device() const { return device_; }
  bool packed() const { return packed_; }
  Dropout& dropout() { return dropout_; }

 private:
  ModelConfig config_;
  torch::Device device_;
  bool packed_ = false;
  Dropout dropout_;
  std::shared_ptr<ItemTower> itemTower_;
  std::shared_ptr<SASRecEncoder> sasrec_;
  std::shared_ptr<DSSMUserTower> dssm_;
};

}  // namespace morec
