#include "batch.h"

namespace morec {

static torch::Tensor longTensor(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::TensorOptions().dtype(torch::kLong));
}

void PackedRows::into(Batch& b) const {
  b.packed = true;
  b.inputIds = longTensor(tokens_);
  b.positions = longTensor(positions_);
  b.seqOffsets = longTensor(offsets_);
}

Batch Batch::to(const torch::Device& device) const {
  if (device.is_cpu()) return *this;
  Batch b = *this;
  for (auto* t : {&b.inputIds, &b.nonPad, &b.positions, &b.lastToken, &b.userIds, &b.validIdx, &b.rowOfValid, &b.posIds, &b.negIds,
                  &b.candIds, &b.targetCol, &b.seenMask})
    if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  return b;
}

}  // namespace morec
