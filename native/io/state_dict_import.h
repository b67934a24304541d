// Loading a public checkpoint into an encoder: each encoder maps the checkpoint's names onto its own
// (MappedStateDict), then importMapped checks everything (missing, unexpected, mis-shaped, non-finite) and
// copies all tensors or none.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace morec {

// A checkpoint's tensors under the encoder's own names; what was set aside and why.
struct MappedStateDict {
  std::map<std::string, torch::Tensor> tensors;  // encoder name -> tensor (converted: e.g. Q, K, V joined)
  std::map<std::string, std::string> sourceOf;   // encoder name -> the checkpoint key(s) it came from
  std::vector<std::string> ignored;              // known heads and buffers the tower never uses (fc, pooler, ...)
  std::vector<std::string> unexpected;           // keys that fit nothing
};

struct ImportReport {
  int64_t loaded = 0;
  std::vector<std::string> ignored;
};

// Copies `m` into target's parameters and floating-point buffers (BatchNorm statistics), which must all be
// present with their shapes; integer buffers (num_batches_tracked) are not required. `what` describes the
// encoder in errors ("the resnet encoder (4 stages)"). Throws EMISMATCH / ENONFINITE naming `file` and the
// tensors; on a throw nothing was copied.
ImportReport importMapped(torch::nn::Module& target, const MappedStateDict& m, const std::string& file,
                          const std::string& what);

}  // namespace morec
