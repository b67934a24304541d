// Per-item inputs of modality towers, held in native memory and handed to a model like Sequences: token ids
// of each item's text, each item's pixels, or each item's frozen-encoder features. Row 0 is the padding item.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>

namespace morec {

struct ItemStoreData {
  int64_t numItems = 0;
  // Text: token ids and lengths (undefined tensors for an image store).
  int64_t maxTokens = 0;
  torch::Tensor tokens;   // int64 [numItems + 1, maxTokens], right-padded with the tokenizer's pad id
  torch::Tensor lengths;  // int64 [numItems + 1], real tokens per item (0 for the padding row only)
  int64_t vocabLimit = 0; // 1 + the largest token id (checked against the encoder's vocabulary)
  // Images: uint8 [numItems + 1, 3, height, width] (CHW per item), either owned or a read-only view of a
  // memory-mapped image store file (pages are read from disk as batches touch them; never written).
  torch::Tensor pixels;
  int64_t height = 0, width = 0;
  // Features (two-stage towers): float32 or float16 [numItems + 1, featureDim], owned or memory-mapped.
  torch::Tensor features;
  int64_t featureDim = 0;
  std::shared_ptr<void> mapping;  // keeps the file mapping alive as long as any model uses the store
  std::string file;               // the mapped file ("" when owned)
  const char* kind() const { return features.defined() ? "features" : pixels.defined() ? "images" : "tokens"; }
};

}  // namespace morec
