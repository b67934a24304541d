#include "dropout.h"

#include <ATen/Parallel.h>

namespace morec {

static inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

torch::Tensor Dropout::operator()(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat) return torch::dropout(x, p, true);
  return x * mask(x.numel(), p, x.options()).view(x.sizes());
}

torch::Tensor Dropout::mask(int64_t numel, double p, const torch::TensorOptions& options) {
  const uint64_t key = splitmix64(seed_ ^ splitmix64(++counter_));
  const float scale = float(1.0 / (1.0 - p));
  // Keep an element when its 32-bit uniform is >= p * 2^32.
  const uint64_t threshold = uint64_t(p * 4294967296.0);
  auto mask = torch::empty({numel}, options.requires_grad(false));
  float* m = mask.data_ptr<float>();
  const int64_t n = numel;
  const int64_t pairs = (n + 1) / 2;
  at::parallel_for(0, pairs, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      uint64_t r = splitmix64(key + uint64_t(i));
      int64_t j = 2 * i;
      m[j] = (r & 0xffffffffULL) >= threshold ? scale : 0.0f;
      if (j + 1 < n) m[j + 1] = (r >> 32) >= threshold ? scale : 0.0f;
    }
  });
  return mask;
}

}  // namespace morec
