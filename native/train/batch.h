// Tensors of one batch, built natively from the CSR sequences (no JS per step). Training batches carry the
// positive and negative item of every non-padded position (or, for the in-batch loss, the batch's candidate
// items and which of them each position may not score against); inference batches only the input windows.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace morec {

struct Batch {
  bool packed = false;       // SASRec layout: packed tokens or left-padded windows
  torch::Tensor inputIds;    // SASRec: int64 [B, T] left-padded with 0; packed: int64 [tokens]
  torch::Tensor nonPad;      // SASRec padded: bool [B, T]
  torch::Tensor positions;   // SASRec packed: int64 [tokens], maxLen - n + j
  torch::Tensor seqOffsets;  // SASRec packed: int64 [B + 1], always on the CPU
  torch::Tensor lastToken;   // SASRec packed inference: int64 [B], index of each sequence's last token
  torch::Tensor userIds;     // DSSM: int64 [B]
  torch::Tensor validIdx;    // training, padded: int64 [M], flat index b * T + t of each non-padded position
  torch::Tensor rowOfValid;  // training: int64 [M], the batch row b of each position (DSSM, in-batch loss)
  torch::Tensor posIds;      // training: int64 [M], the next item (SASRec) / the interacted item (DSSM)
  torch::Tensor negIds;      // training, BCE: int64 [M], one sampled negative per position
  // Training, in-batch loss: every item occurrence of the batch's training windows (SASRec: each row's
  // n + 1 window items; DSSM: the positives) is a candidate column.
  torch::Tensor candIds;     // int64 [C], the item of each column
  torch::Tensor targetCol;   // int64 [M], the column holding each position's positive
  torch::Tensor seenMask;    // bool [rows, C], the column's item is in the row user's training prefix
  int64_t rows = 0;

  Batch to(const torch::Device& device) const;
};

// The packed SASRec layout of a batch, built row by row: each row's items (its window's last n, in order) at
// positions maxLen - n .. maxLen - 1, rows delimited by offsets. The one place that lays out packed rows (training
// and inference batches, and hidden states of left-padded windows).
class PackedRows {
 public:
  explicit PackedRows(int64_t maxLen) : maxLen_(maxLen) {}
  template <class T>
  void add(const T* items, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
      tokens_.push_back(int64_t(items[j]));
      positions_.push_back(maxLen_ - n + j);
    }
    offsets_.push_back(int64_t(tokens_.size()));
  }
  int64_t tokens() const { return int64_t(tokens_.size()); }
  // Sets inputIds, positions and seqOffsets (and packed) of b.
  void into(Batch& b) const;

 private:
  int64_t maxLen_;
  std::vector<int64_t> tokens_, positions_, offsets_{0};
};

}  // namespace morec
