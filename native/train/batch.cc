#include "batch.h"

namespace morec {

Batch Batch::to(const torch::Device& device) const {
  if (device.is_cpu()) return *this;
  Batch b = *this;
  for (auto* t : {&b.inputIds, &b.nonPad, &b.positions, &b.lastToken, &b.userIds, &b.validIdx, &b.rowOfValid, &b.posIds, &b.negIds})
    if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  return b;
}

}  // namespace morec
