// Tensors of one batch, built natively from the CSR sequences (no JS per step). Training batches carry the
// positive and negative item of every non-padded position; inference batches only the input windows.
#pragma once

#include <torch/torch.h>

namespace morec {

struct Batch {
  torch::Tensor inputIds;    // SASRec: int64 [B, T], left-padded with 0
  torch::Tensor nonPad;      // SASRec: bool [B, T]
  torch::Tensor userIds;     // DSSM: int64 [B]
  torch::Tensor validIdx;    // training: int64 [M], flat index b * T + t of each non-padded position
  torch::Tensor rowOfValid;  // training: int64 [M], the batch row b of each position (DSSM)
  torch::Tensor posIds;      // training: int64 [M], the next item (SASRec) / the interacted item (DSSM)
  torch::Tensor negIds;      // training: int64 [M], one sampled negative per position
  int64_t rows = 0;

  Batch to(const torch::Device& device) const;
};

}  // namespace morec
