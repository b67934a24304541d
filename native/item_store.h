// Per-item inputs of modality towers, held in native memory and handed to a model like Sequences: token ids
// of each item's text now (pixels and feature matrices join later). Row 0 is the padding item.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace morec {

struct ItemStoreData {
  int64_t numItems = 0;
  int64_t maxTokens = 0;
  torch::Tensor tokens;   // int64 [numItems + 1, maxTokens], right-padded with the tokenizer's pad id
  torch::Tensor lengths;  // int64 [numItems + 1], real tokens per item (0 for the padding row only)
  int64_t vocabLimit = 0; // 1 + the largest token id (checked against the encoder's vocabulary)
};

}  // namespace morec
