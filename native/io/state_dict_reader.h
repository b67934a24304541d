#pragma once
#include <torch/torch.h>
#include <map>
#include <string>
namespace morec {
// Reads every tensor of a checkpoint file: `.safetensors` (memory-mapped, not read into a buffer first: files
// larger than 2 GiB must work) or a PyTorch zip checkpoint (`pytorch_model.bin`, torchvision `.pth`: what
// torch.save(state_dict) writes since PyTorch 1.6). Floating tensors (F32, F16, BF16, F64) come back as
// contiguous float32 CPU tensors; integer tensors (I64, I32, I16, I8, U8, BOOL) as int64. Format is detected from
// the file's content (zip magic "PK\x03\x04" vs safetensors' 8-byte header length + '{'), not its name.
std::map<std::string, torch::Tensor> readStateDict(const std::string& path);
}
