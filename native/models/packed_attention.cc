#include "packed_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace morec {

// Start of each sequence's block of heads x n x n probabilities.
static std::vector<int64_t> probabilityOffsets(const int64_t* off, int64_t S, int64_t heads) {
  std::vector<int64_t> p(size_t(S + 1), 0);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t n = off[s + 1] - off[s];
    p[size_t(s + 1)] = p[size_t(s)] + heads * n * n;
  }
  return p;
}

int64_t PackedAttention::probabilityCount(const torch::Tensor& seqOffsets, int64_t heads) {
  const int64_t S = seqOffsets.size(0) - 1;
  return probabilityOffsets(seqOffsets.data_ptr<int64_t>(), S, heads)[size_t(S)];
}

torch::Tensor PackedAttention::forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkvIn,
                                       const torch::Tensor& seqOffsets, const torch::Tensor& dropMask, bool causal) {
  auto qkv = qkvIn.contiguous();
  const int64_t N = qkv.size(0), H = qkv.size(2), dk = qkv.size(3);
  const int64_t S = seqOffsets.size(0) - 1;
  const int64_t* off = seqOffsets.data_ptr<int64_t>();
  const auto pOff = probabilityOffsets(off, S, H);
  auto probs = torch::zeros({pOff[size_t(S)]}, qkv.options());
  auto out = torch::empty({N, H, dk}, qkv.options());
  const float* base = qkv.data_ptr<float>();
  float* P = probs.data_ptr<float>();
  const float* M = dropMask.numel() ? dropMask.data_ptr<float>() : nullptr;
  float* O = out.data_ptr<float>();
  const int64_t tokenStride = 3 * H * dk;
  at::parallel_for(0, S, 8, [&](int64_t sb, int64_t se) {
    std::vector<float> row;
    for (int64_t s = sb; s < se; ++s) {
      const int64_t t0 = off[s], n = off[s + 1] - off[s];
      row.resize(size_t(n));
      for (int64_t h = 0; h < H; ++h) {
        float* Ps = P + pOff[size_t(s)] + h * n * n;
        const float* Ms = M ? M + pOff[size_t(s)] + h * n * n : nullptr;
        for (int64_t i = 0; i < n; ++i) {
          const int64_t end = causal ? i + 1 : n;  // keys attended by query i
          const float* q = base + (t0 + i) * tokenStride + h * dk;
          float mx = -INFINITY;
          for (int64_t j = 0; j < end; ++j) {
            const float* k = base + (t0 + j) * tokenStride + H * dk + h * dk;
            float acc = 0.f;
            for (int64_t c = 0; c < dk; ++c) acc += q[c] * k[c];
            row[size_t(j)] = acc;
            mx = std::max(mx, acc);
          }
          float sum = 0.f;
          for (int64_t j = 0; j < end; ++j) {
            row[size_t(j)] = std::exp(row[size_t(j)] - mx);
            sum += row[size_t(j)];
          }
          float* o = O + (t0 + i) * H * dk + h * dk;
          std::fill(o, o + dk, 0.f);
          for (int64_t j = 0; j < end; ++j) {
            const float p = row[size_t(j)] / sum;
            Ps[i * n + j] = p;
            const float pd = Ms ? p * Ms[i * n + j] : p;
            if (pd == 0.f) continue;
            const float* v = base + (t0 + j) * tokenStride + 2 * H * dk + h * dk;
            for (int64_t c = 0; c < dk; ++c) o[c] += pd * v[c];
          }
        }
      }
    }
  });
  ctx->save_for_backward({qkv, seqOffsets, probs, dropMask});
  ctx->saved_data["causal"] = causal;
  return out.view({N, H * dk});
}

torch::autograd::tensor_list PackedAttention::backward(torch::autograd::AutogradContext* ctx,
                                                       torch::autograd::tensor_list grads) {
  auto saved = ctx->get_saved_variables();
  const auto& qkv = saved[0];
  const auto& seqOffsets = saved[1];
  const auto& probs = saved[2];
  const auto& dropMask = saved[3];
  const bool causal = ctx->saved_data["causal"].toBool();
  const int64_t N = qkv.size(0), H = qkv.size(2), dk = qkv.size(3);
  const int64_t S = seqOffsets.size(0) - 1;
  const int64_t* off = seqOffsets.data_ptr<int64_t>();
  const auto pOff = probabilityOffsets(off, S, H);
  auto gradOut = grads[0].contiguous().view({N, H, dk});
  auto gradQkv = torch::zeros_like(qkv);
  const float* base = qkv.data_ptr<float>();
  const float* P = probs.data_ptr<float>();
  const float* M = dropMask.numel() ? dropMask.data_ptr<float>() : nullptr;
  const float* dO = gradOut.data_ptr<float>();
  float* G = gradQkv.data_ptr<float>();
  const int64_t tokenStride = 3 * H * dk;
  at::parallel_for(0, S, 8, [&](int64_t sb, int64_t se) {
    std::vector<float> dP;
    for (int64_t s = sb; s < se; ++s) {
      const int64_t t0 = off[s], n = off[s + 1] - off[s];
      dP.resize(size_t(n));
      for (int64_t h = 0; h < H; ++h) {
        const float* Ps = P + pOff[size_t(s)] + h * n * n;
        const float* Ms = M ? M + pOff[size_t(s)] + h * n * n : nullptr;
        for (int64_t i = 0; i < n; ++i) {
          const int64_t end = causal ? i + 1 : n;
          const float* dOi = dO + (t0 + i) * H * dk + h * dk;
          const float* q = base + (t0 + i) * tokenStride + h * dk;
          float* dq = G + (t0 + i) * tokenStride + h * dk;
          float dot = 0.f;
          for (int64_t j = 0; j < end; ++j) {
            const float* v = base + (t0 + j) * tokenStride + 2 * H * dk + h * dk;
            float* dv = G + (t0 + j) * tokenStride + 2 * H * dk + h * dk;
            const float m = Ms ? Ms[i * n + j] : 1.f;
            const float pd = Ps[i * n + j] * m;
            float acc = 0.f;
            for (int64_t c = 0; c < dk; ++c) {
              acc += dOi[c] * v[c];
              dv[c] += pd * dOi[c];
            }
            dP[size_t(j)] = acc * m;
            dot += Ps[i * n + j] * dP[size_t(j)];
          }
          for (int64_t j = 0; j < end; ++j) {
            const float dS = Ps[i * n + j] * (dP[size_t(j)] - dot);
            if (dS == 0.f) continue;
            const float* k = base + (t0 + j) * tokenStride + H * dk + h * dk;
            float* dkp = G + (t0 + j) * tokenStride + H * dk + h * dk;
            for (int64_t c = 0; c < dk; ++c) {
              dq[c] += dS * k[c];
              dkp[c] += dS * q[c];
            }
          }
        }
      }
    }
  });
  return {gradQkv, torch::Tensor(), torch::Tensor(), torch::Tensor()};
}

}  // namespace morec
