// Tensors of one batch, built natively from the CSR sequences (no JS per step). Training batches carry the
// positive and negative item of every non-padded position; inference batches only the input windows.
#pragma once

#include <torch/torch.h>

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
  torch::Tensor rowOfValid;  // training: int64 [M], the batch row b of each position (DSSM)
  torch::Tensor posIds;      // training: int64 [M], the next item (SASRec) / the interacted item (DSSM)
  torch::Tensor negIds;      // training: int64 [M], one sampled negative per position
  int64_t rows = 0;

  Batch to(const torch::Device& device) const;
};

}  // namespace morec
