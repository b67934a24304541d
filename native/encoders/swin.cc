#include "swin.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <regex>
#include <set>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include "../common.h"

namespace morec {

namespace {

torch::nn::LayerNorm layerNorm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

// torchvision's trunc_normal_(std=0.02) (bounds -2 and 2, i.e. 100 standard deviations: a plain normal).
void truncNormal(torch::Tensor& t, double std) { t.normal_(0.0, std).clamp_(-2.0, 2.0); }

torch::nn::Linear linear(int64_t in, int64_t out, bool bias) {
  torch::nn::Linear l(torch::nn::LinearOptions(in, out).bias(bias));
  // torchvision's SwinTransformer re-initializes every Linear (also the MLP's, after the block's own
  // xavier init): trunc_normal(std 0.02) weights, zero biases.
  torch::NoGradGuard noGrad;
  truncNormal(l->weight, 0.02);
  if (bias) l->bias.zero_();
  return l;
}

// out[i] = src[index[i]] over rows of a [R, C] tensor, where index == R selects a zero row (zeroRow). Each
// row of src is used at most once, so the backward pass is the inverse gather: grad_src[j] =
// grad_out[backIndex[j]] (backIndex == out rows: a zero gradient). A plain index_select backward would
// scatter-add instead, several times slower on CPU.
class RowGather : public torch::autograd::Function<RowGather> {
 public:
  static torch::Tensor gather(const torch::Tensor& src, const torch::Tensor& index, bool zeroRow) {
    auto s = src.contiguous();
    if (zeroRow) s = torch::cat({s, torch::zeros({1, s.size(1)}, s.options())});
    return s.index_select(0, index);
  }
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& src, const torch::Tensor& index,
                               const torch::Tensor& backIndex, bool zeroRow, bool backZeroRow) {
    ctx->saved_data["backIndex"] = backIndex;
    ctx->saved_data["backZeroRow"] = backZeroRow;
    return gather(src, index, zeroRow);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto g = gather(grads[0], ctx->saved_data["backIndex"].toTensor(), ctx->saved_data["backZeroRow"].toBool());
    return {g, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Per (window, head) products of the window attention, register-blocked: 4 rows x 2 vectors of accumulators
// (8 independent multiply-add chains) held as GCC/Clang vector values. x86-64 builds them twice: for AVX2 +
// FMA (8-float vectors), chosen at run time when the CPU has them, and for the SSE2 baseline (4-float
// vectors); other targets use 4-float vectors (NEON).
typedef float Float32x8 __attribute__((vector_size(32)));
typedef float Float32x4 __attribute__((vector_size(16)));

// Columns of the score rows: N rounded up to 16 (a whole number of column blocks for either width).
inline int64_t scoreColumns(int64_t N) { return (N + 15) / 16 * 16; }

// S[i][j] (row stride Np = scoreColumns(N)) = alpha * sum_c A[i][c] B[j][c] (+ bias[i][j], [N, N]) for
// i, j < N; A and B rows of dk values with strides lda, ldb. Bt: scratch [dk, Np].
template <class V>
__attribute__((always_inline)) inline void scoresBody(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t N,
                                                      int64_t dk, float alpha, const float* bias, float* S, float* Bt) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  const int64_t Np = scoreColumns(N);
  for (int64_t c = 0; c < dk; ++c) {
    for (int64_t j = 0; j < N; ++j) Bt[c * Np + j] = B[j * ldb + c];
    for (int64_t j = N; j < Np; ++j) Bt[c * Np + j] = 0.f;
  }
  for (int64_t i0 = 0; i0 < N; i0 += 4) {
    const float* a0 = A + std::min<int64_t>(i0, N - 1) * lda;
    const float* a1 = A + std::min<int64_t>(i0 + 1, N - 1) * lda;
    const float* a2 = A + std::min<int64_t>(i0 + 2, N - 1) * lda;
    const float* a3 = A + std::min<int64_t>(i0 + 3, N - 1) * lda;
    for (int64_t j0 = 0; j0 < Np; j0 += 2 * L) {
      V x0 = {}, x1 = {}, x2 = {}, x3 = {}, y0 = {}, y1 = {}, y2 = {}, y3 = {};
      for (int64_t c = 0; c < dk; ++c) {
        V b, d;
        std::memcpy(&b, Bt + c * Np + j0, sizeof b);
        std::memcpy(&d, Bt + c * Np + j0 + L, sizeof d);
        x0 += a0[c] * b;
        y0 += a0[c] * d;
        x1 += a1[c] * b;
        y1 += a1[c] * d;
        x2 += a2[c] * b;
        y2 += a2[c] * d;
        x3 += a3[c] * b;
        y3 += a3[c] * d;
      }
      const V x[4] = {x0, x1, x2, x3}, y[4] = {y0, y1, y2, y3};
      for (int r = 0; r < 4 && i0 + r < N; ++r) {
        float* out = S + (i0 + r) * Np + j0;
        const V lo = alpha * x[r], hi = alpha * y[r];
        std::memcpy(out, &lo, sizeof lo);
        std::memcpy(out + L, &hi, sizeof hi);
        if (bias) {
          const float* br = bias + (i0 + r) * N;
          for (int64_t j = j0; j < std::min(j0 + 2 * L, N); ++j) out[j - j0] += br[j];
        }
      }
    }
  }
}

// O[i][c] (row stride ldo) = alpha * sum_j P[i][j] V[j][c] for i < N, c < dk; P rows of N values with stride
// ldp, V rows with stride ldv.
template <class V>
__attribute__((always_inline)) inline void probsTimesValuesBody(const float* P, int64_t ldp, const float* Vals, int64_t ldv,
                                                                int64_t N, int64_t dk, float alpha, float* O, int64_t ldo) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  for (int64_t i0 = 0; i0 < N; i0 += 4) {
    const float* p[4];
    for (int r = 0; r < 4; ++r) p[r] = P + std::min<int64_t>(i0 + r, N - 1) * ldp;
    const int rows = int(std::min<int64_t>(4, N - i0));
    int64_t c0 = 0;
    for (; c0 + 2 * L <= dk; c0 += 2 * L) {
      V x0 = {}, x1 = {}, x2 = {}, x3 = {}, y0 = {}, y1 = {}, y2 = {}, y3 = {};
      for (int64_t j = 0; j < N; ++j) {
        V v, w;
        std::memcpy(&v, Vals + j * ldv + c0, sizeof v);
        std::memcpy(&w, Vals + j * ldv + c0 + L, sizeof w);
        x0 += p[0][j] * v;
        y0 += p[0][j] * w;
        x1 += p[1][j] * v;
        y1 += p[1][j] * w;
        x2 += p[2][j] * v;
        y2 += p[2][j] * w;
        x3 += p[3][j] * v;
        y3 += p[3][j] * w;
      }
      const V x[4] = {x0, x1, x2, x3}, y[4] = {y0, y1, y2, y3};
      for (int r = 0; r < rows; ++r) {
        const V lo = alpha * x[r], hi = alpha * y[r];
        std::memcpy(O + (i0 + r) * ldo + c0, &lo, sizeof lo);
        std::memcpy(O + (i0 + r) * ldo + c0 + L, &hi, sizeof hi);
      }
    }
    for (; c0 + L <= dk; c0 += L) {
      V x0 = {}, x1 = {}, x2 = {}, x3 = {};
      for (int64_t j = 0; j < N; ++j) {
        V v;
        std::memcpy(&v, Vals + j * ldv + c0, sizeof v);
        x0 += p[0][j] * v;
        x1 += p[1][j] * v;
        x2 += p[2][j] * v;
        x3 += p[3][j] * v;
      }
      const V x[4] = {x0, x1, x2, x3};
      for (int r = 0; r < rows; ++r) {
        const V lo = alpha * x[r];
        std::memcpy(O + (i0 + r) * ldo + c0, &lo, sizeof lo);
      }
    }
    for (; c0 < dk; ++c0)
      for (int r = 0; r < rows; ++r) {
        float acc = 0.f;
        for (int64_t j = 0; j < N; ++j) acc += p[r][j] * Vals[j * ldv + c0];
        O[(i0 + r) * ldo + c0] = alpha * acc;
      }
  }
}

// exp of each lane (Cephes' expf polynomial, within 2 ulp over the range used; inputs below -87 give
// exp(-87) ~ 1.6e-38 instead of a denormal or 0, which no softmax sum can see).
template <class V, class I>
__attribute__((always_inline)) inline void expLanes(V& x) {  // in place: no vector passed by value (ABI)
  x = x < -87.f ? V{} - 87.f : x;
  x = x > 88.f ? V{} + 88.f : x;
  const V fx = x * 1.44269504088896341f + 0.5f;
  I n = __builtin_convertvector(fx, I);
  n += (__builtin_convertvector(n, V) > fx);  // truncation -> floor (the comparison is -1 where true)
  const V nf = __builtin_convertvector(n, V);
  x = x - nf * 0.693359375f + nf * 2.12194440e-4f;
  const V z = x * x;
  V y = 1.9875691500E-4f * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * z + x + 1.f;
  x = y * (V)((n + 127) << 23);
}

// Row-wise softmax of S (rows of stride Np, first N columns) into P (rows of N).
template <class V, class I>
__attribute__((always_inline)) inline void softmaxBody(const float* S, int64_t Np, int64_t N, float* P) {
  constexpr int64_t L = sizeof(V) / sizeof(float);
  const int64_t full = N / L * L;
  for (int64_t i = 0; i < N; ++i) {
    const float* s = S + i * Np;
    float* p = P + i * N;
    float mx = -INFINITY;
    if (full) {
      V m;
      std::memcpy(&m, s, sizeof m);
      for (int64_t j = L; j < full; j += L) {
        V v;
        std::memcpy(&v, s + j, sizeof v);
        m = v > m ? v : m;
      }
      for (int64_t l = 0; l < L; ++l) mx = std::max(mx, m[l]);
    }
    for (int64_t j = full; j < N; ++j) mx = std::max(mx, s[j]);
    V acc = {};
    for (int64_t j = 0; j < full; j += L) {
      V v;
      std::memcpy(&v, s + j, sizeof v);
      V e = v - mx;
      expLanes<V, I>(e);
      std::memcpy(p + j, &e, sizeof e);
      acc += e;
    }
    float sum = 0.f;
    for (int64_t l = 0; l < L; ++l) sum += acc[l];
    for (int64_t j = full; j < N; ++j) {
      p[j] = std::exp(s[j] - mx);
      sum += p[j];
    }
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < full; j += L) {
      V v;
      std::memcpy(&v, p + j, sizeof v);
      v *= inv;
      std::memcpy(p + j, &v, sizeof v);
    }
    for (int64_t j = full; j < N; ++j) p[j] *= inv;
  }
}

typedef int Int32x8 __attribute__((vector_size(32)));
typedef int Int32x4 __attribute__((vector_size(16)));

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2,fma"))) void scoresAvx2(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t N,
                                                    int64_t dk, float alpha, const float* bias, float* S, float* Bt) {
  scoresBody<Float32x8>(A, lda, B, ldb, N, dk, alpha, bias, S, Bt);
}
__attribute__((target("avx2,fma"))) void probsTimesValuesAvx2(const float* P, int64_t ldp, const float* Vals, int64_t ldv,
                                                              int64_t N, int64_t dk, float alpha, float* O, int64_t ldo) {
  probsTimesValuesBody<Float32x8>(P, ldp, Vals, ldv, N, dk, alpha, O, ldo);
}
__attribute__((target("avx2,fma"))) void softmaxAvx2(const float* S, int64_t Np, int64_t N, float* P) {
  softmaxBody<Float32x8, Int32x8>(S, Np, N, P);
}
bool haveAvx2() {
  static const bool yes = [] {
    __builtin_cpu_init();  // the check may run before libgcc's own initializer
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}
#endif

void scoresBlock(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t N, int64_t dk, float alpha,
                 const float* bias, float* S, float* Bt) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (haveAvx2()) return scoresAvx2(A, lda, B, ldb, N, dk, alpha, bias, S, Bt);
#endif
  scoresBody<Float32x4>(A, lda, B, ldb, N, dk, alpha, bias, S, Bt);
}

void softmaxRows(const float* S, int64_t Np, int64_t N, float* P) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (haveAvx2()) return softmaxAvx2(S, Np, N, P);
#endif
  softmaxBody<Float32x4, Int32x4>(S, Np, N, P);
}

void probsTimesValues(const float* P, int64_t ldp, const float* Vals, int64_t ldv, int64_t N, int64_t dk, float alpha,
                      float* O, int64_t ldo) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (haveAvx2()) return probsTimesValuesAvx2(P, ldp, Vals, ldv, N, dk, alpha, O, ldo);
#endif
  probsTimesValuesBody<Float32x4>(P, ldp, Vals, ldv, N, dk, alpha, O, ldo);
}

void transposeSquare(const float* X, int64_t N, float* T) {
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) T[j * N + i] = X[i * N + j];
}

// Window attention over every (window, head) of a batch with an additive bias, as one autograd function with
// a hand-written forward and backward (CPU, float32). libtorch's CPU bmm loops over its batch creating a
// tensor view per window and head (tens of thousands of 49 x 49 products per stage), which costs more than
// the products themselves; this kernel also reads Q, K and V in place from the qkv projection and writes the
// heads' outputs side by side, so neither the [3, windows, heads, N, dh] copy nor the head-merging transpose
// is made, and without gradients no probability tensor is stored at all.
class WindowAttention : public torch::autograd::Function<WindowAttention> {
 public:
  // qkv: [windows * N, 3C] (torchvision's order: part, head, channel); bias: [nB, heads, N, N] with nB = 1 or
  // windowsPerImage (window w of any image uses bias[w % nB]); dropMask: scaled keep-mask of the attention
  // probabilities [windows * heads * N * N], or empty. Returns softmax(scale * q k^T + bias) v: [windows * N, C].
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkvIn, const torch::Tensor& biasIn,
                               const torch::Tensor& dropMask, int64_t heads, double scale) {
    RECORD_FUNCTION("morec::swin_window_attention", std::vector<c10::IValue>());
    auto qkv = qkvIn.contiguous();
    auto bias = biasIn.contiguous();
    const int64_t N = bias.size(-1), nB = bias.size(0), C = qkv.size(1) / 3, dk = C / heads, windows = qkv.size(0) / N;
    const int64_t Np = scoreColumns(N), ld = 3 * C;
    const bool save = qkvIn.requires_grad() || biasIn.requires_grad();
    auto out = torch::empty({windows * N, C}, qkv.options());
    torch::Tensor probs = save ? torch::empty({windows * heads * N * N}, qkv.options()) : torch::Tensor();
    const float* Q = qkv.data_ptr<float>();
    const float* Bs = bias.data_ptr<float>();
    const float* M = dropMask.numel() ? dropMask.data_ptr<float>() : nullptr;
    float* O = out.data_ptr<float>();
    float* Ps = save ? probs.data_ptr<float>() : nullptr;
    const float sc = float(scale);
    at::parallel_for(0, windows * heads, 4, [&](int64_t t0, int64_t t1) {
      std::vector<float> Bt(size_t(dk * Np)), S(size_t(N * Np)), local(size_t(N * N)), dropped(M ? size_t(N * N) : 0);
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t w = task / heads, h = task % heads;
        const float* q = Q + w * N * ld + h * dk;
        scoresBlock(q, ld, q + C, ld, N, dk, sc, Bs + ((w % nB) * heads + h) * N * N, S.data(), Bt.data());
        float* P = save ? Ps + task * N * N : local.data();
        softmaxRows(S.data(), Np, N, P);
        const float* used = P;
        if (M) {
          const float* m = M + task * N * N;
          for (int64_t k = 0; k < N * N; ++k) dropped[size_t(k)] = P[k] * m[k];
          used = dropped.data();
        }
        probsTimesValues(used, N, q + 2 * C, ld, N, dk, 1.f, O + w * N * C + h * dk, C);
      }
    });
    if (save) {
      ctx->save_for_backward({qkv, probs, dropMask});
      ctx->saved_data["heads"] = heads;
      ctx->saved_data["scale"] = scale;
      ctx->saved_data["biasShape"] = bias.sizes().vec();
      ctx->saved_data["biasGrad"] = biasIn.requires_grad();
    }
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    RECORD_FUNCTION("morec::swin_window_attention_backward", std::vector<c10::IValue>());
    auto saved = ctx->get_saved_variables();
    const auto& qkv = saved[0];
    const auto& probs = saved[1];
    const auto& dropMask = saved[2];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const float sc = float(ctx->saved_data["scale"].toDouble());
    const auto biasShape = ctx->saved_data["biasShape"].toIntVector();
    const bool biasGrad = ctx->saved_data["biasGrad"].toBool();
    const int64_t N = biasShape[3], nB = biasShape[0], C = qkv.size(1) / 3, dk = C / heads, windows = qkv.size(0) / N;
    const int64_t Np = scoreColumns(N), ld = 3 * C;
    auto gradOut = grads[0].contiguous();
    auto gradQkv = torch::empty_like(qkv);  // every element is written once below
    torch::Tensor gradScores = biasGrad ? torch::empty({windows * heads * N * N}, qkv.options()) : torch::Tensor();
    const float* Q = qkv.data_ptr<float>();
    const float* Ps = probs.data_ptr<float>();
    const float* M = dropMask.numel() ? dropMask.data_ptr<float>() : nullptr;
    const float* dO = gradOut.data_ptr<float>();
    float* G = gradQkv.data_ptr<float>();
    float* dSs = biasGrad ? gradScores.data_ptr<float>() : nullptr;
    at::parallel_for(0, windows * heads, 4, [&](int64_t t0, int64_t t1) {
      std::vector<float> Bt(size_t(dk * Np)), dP(size_t(N * Np)), dSlocal(size_t(N * N)), T(size_t(N * N));
      for (int64_t task = t0; task < t1; ++task) {
        const int64_t w = task / heads, h = task % heads;
        const float* q = Q + w * N * ld + h * dk;
        const float* dOw = dO + w * N * C + h * dk;
        float* g = G + w * N * ld + h * dk;
        const float* P = Ps + task * N * N;
        const float* m = M ? M + task * N * N : nullptr;
        float* dS = dSs ? dSs + task * N * N : dSlocal.data();
        // dP = dO V^T (times the dropout mask); dS = P * (dP - rowsum(P * dP)).
        scoresBlock(dOw, C, q + 2 * C, ld, N, dk, 1.f, nullptr, dP.data(), Bt.data());
        for (int64_t i = 0; i < N; ++i) {
          float* dp = dP.data() + i * Np;
          if (m)
            for (int64_t j = 0; j < N; ++j) dp[j] *= m[i * N + j];
          float dot = 0.f;
          for (int64_t j = 0; j < N; ++j) dot += P[i * N + j] * dp[j];
          for (int64_t j = 0; j < N; ++j) dS[i * N + j] = P[i * N + j] * (dp[j] - dot);
        }
        // dV = (P * mask)^T dO
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) T[size_t(j * N + i)] = m ? P[i * N + j] * m[i * N + j] : P[i * N + j];
        probsTimesValues(T.data(), N, dOw, C, N, dk, 1.f, g + 2 * C, ld);
        // dQ = scale dS K; dK = scale dS^T Q
        probsTimesValues(dS, N, q + C, ld, N, dk, sc, g, ld);
        transposeSquare(dS, N, T.data());
        probsTimesValues(T.data(), N, q, ld, N, dk, sc, g + C, ld);
      }
    });
    torch::Tensor gradBias;
    // Sum over the images (and over the windows when they share one bias).
    if (biasGrad) gradBias = gradScores.view({-1, nB, heads, N, N}).sum(0);
    return {gradQkv, gradBias, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Python's slice(start, stop) over a length n (negative = from the end, nullopt = open), as [begin, end).
std::pair<int64_t, int64_t> pythonSlice(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop) {
  auto resolve = [n](std::optional<int64_t> v, int64_t open) {
    if (!v) return open;
    int64_t i = *v < 0 ? *v + n : *v;
    return std::clamp<int64_t>(i, 0, n);
  };
  return {resolve(start, 0), resolve(stop, n)};
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

SwinBlock::SwinBlock(int64_t dim, int64_t heads, int64_t window, int64_t shift, int64_t hidden, double eps,
                     double attentionDropout, double dropPath, std::shared_ptr<SwinGeometryCache> geometries)
    : dim_(dim),
      heads_(heads),
      window_(window),
      shift_(shift),
      attentionDropout_(attentionDropout),
      dropPath_(dropPath),
      geometries_(std::move(geometries)) {
  norm1_ = register_module("norm1", layerNorm(dim, eps));
  auto attn = register_module("attn", std::make_shared<torch::nn::Module>());
  qkv_ = attn->register_module("qkv", linear(dim, 3 * dim, true));
  proj_ = attn->register_module("proj", linear(dim, dim, true));
  biasTable_ = attn->register_parameter("relative_position_bias_table",
                                        torch::zeros({(2 * window - 1) * (2 * window - 1), heads}));
  norm2_ = register_module("norm2", layerNorm(dim, eps));
  // torchvision's MLP: 0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout.
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1_ = mlp->register_module("0", linear(dim, hidden, true));
  fc2_ = mlp->register_module("3", linear(hidden, dim, true));
  torch::NoGradGuard noGrad;
  truncNormal(biasTable_, 0.02);
}

torch::Tensor SwinBlock::stochasticDepth(const torch::Tensor& x, Dropout& drop, bool training) {
  if (!training || dropPath_ <= 0.0) return x;
  // torchvision's StochasticDepth(p, "row"): one keep/drop per image, kept rows scaled by 1 / (1 - p).
  auto keep = drop.mask(x.size(0), dropPath_, torch::TensorOptions().dtype(torch::kFloat))
                  .view({x.size(0), 1, 1, 1})
                  .to(x.device(), x.scalar_type());
  return x * keep;
}

torch::Tensor SwinBlock::attention(const torch::Tensor& rows, int64_t B, const SwinWindowGeometry& g, Dropout& drop,
                                   bool training) {
  const int64_t N = window_ * window_, nW = g.numWindows, Bw = B * nW, dh = dim_ / heads_;
  const double scale = 1.0 / std::sqrt(double(dh));
  auto qkv = qkv_->forward(rows);  // [Bw * N, 3C]: one GEMM for Q, K and V
  // Relative position bias [heads, N, N] (+ the shift mask [nW, 1, N, N]).
  auto bias = biasTable_.index_select(0, g.relativeIndex).view({N, N, heads_}).permute({2, 0, 1});
  if (g.mask.defined()) bias = bias.unsqueeze(0) + g.mask;
  const bool dropping = training && attentionDropout_ > 0.0;
  torch::Tensor context;
  if (qkv.device().is_cpu() && qkv.scalar_type() == torch::kFloat) {
    // torchvision 0.14 calls F.dropout(attn, p) with its default training=True, i.e. also in eval mode; morec
    // drops attention weights only while training.
    auto mask = dropping ? drop.mask(Bw * heads_ * N * N, attentionDropout_, qkv.options()) : torch::empty({0}, qkv.options());
    context = WindowAttention::apply(qkv, bias.dim() == 3 ? bias.unsqueeze(0) : bias, mask, heads_, scale);
  } else {
    auto parts = qkv.view({Bw, N, 3, heads_, dh}).permute({2, 0, 3, 1, 4}).contiguous();
    auto q = parts[0].view({Bw * heads_, N, dh}), k = parts[1].view({Bw * heads_, N, dh});
    auto v = parts[2].view({Bw * heads_, N, dh});
    auto scores = torch::bmm(q, k.transpose(1, 2)).view({B, nW, heads_, N, N});
    auto probs = drop(torch::softmax(torch::add(bias, scores, scale), -1), attentionDropout_, dropping);
    context = torch::bmm(probs.view({Bw * heads_, N, N}), v).view({Bw, heads_, N, dh}).transpose(1, 2).reshape({Bw * N, dim_});
  }
  return proj_->forward(context);
}

torch::Tensor SwinBlock::run(const torch::Tensor& x, Dropout& drop) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), HW = H * W;
  const bool training = is_training();
  const auto& g = geometries_->get(H, W, shift_, x.device());
  auto h = norm1_->forward(x).view({B * HW, C});
  torch::Tensor attended;
  if (g.identity) {
    attended = attention(h, B, g, drop, training);
  } else {
    // Pad to window multiples, roll by -shift and partition into windows: one row gather each way, with a
    // zero row standing for padding tokens (torchvision pads after norm1 with zeros).
    const int64_t L = g.toWindows.size(0);
    auto batch = torch::arange(B, g.toWindows.options()).view({B, 1});
    auto toWindows = g.toWindows.unsqueeze(0) + batch * HW;
    if (g.padded) toWindows = torch::where(g.toWindows.unsqueeze(0).lt(HW), toWindows, torch::full_like(toWindows, B * HW));
    toWindows = toWindows.view({-1});
    auto fromWindows = (g.fromWindows.unsqueeze(0) + batch * L).view({-1});
    auto rows = RowGather::apply(h, toWindows, fromWindows, g.padded, false);
    attended = RowGather::apply(attention(rows, B, g, drop, training), fromWindows, toWindows, false, g.padded);
  }
  auto y = x + stochasticDepth(attended.view({B, H, W, C}), drop, training);
  auto mlp = fc2_->forward(torch::gelu(fc1_->forward(norm2_->forward(y).view({B * HW, C}))));  // 2-D: addmm
  return y + stochasticDepth(mlp.view({B, H, W, C}), drop, training);
}

SwinPatchMerging::SwinPatchMerging(int64_t dim, double eps) {
  reduction_ = register_module("reduction", linear(4 * dim, 2 * dim, false));
  norm_ = register_module("norm", layerNorm(4 * dim, eps));
}

torch::Tensor SwinPatchMerging::forward(const torch::Tensor& x) {
  auto h = x;
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  if (H % 2 || W % 2) h = torch::constant_pad_nd(h, {0, 0, 0, W % 2, 0, H % 2});
  const int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2;
  // torchvision's cat([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]], -1): channel block
  // (dx * 2 + dy), i.e. [B, H2, dy, W2, dx, C] -> [B, H2, W2, dx, dy, C], in one copy.
  h = h.reshape({B, H2, 2, W2, 2, C}).permute({0, 1, 3, 4, 2, 5}).reshape({B, H2, W2, 4 * C});
  return reduction_->forward(norm_->forward(h));
}

// ---------------------------------------------------------------------------------------------------------

SwinEncoder::SwinEncoder(const ImageTowerConfig& config)
    : c_(config), geometries_(std::make_shared<SwinGeometryCache>(config.windowSize)) {
  const int64_t S = int64_t(c_.depths.size()), C = c_.width, p = c_.patchSize, ws = c_.windowSize;
  auto features = register_module("features", std::make_shared<torch::nn::Module>());
  auto stem = features->register_module("0", std::make_shared<torch::nn::Module>());  // Conv2d, Permute, LayerNorm
  patchConv_ = stem->register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, C, p).stride(p)));
  patchNorm_ = stem->register_module("2", layerNorm(C, c_.layerNormEps));
  int64_t total = 0;
  for (auto d : c_.depths) total += d;
  int64_t k = 0;
  merges_.resize(size_t(S));
  for (int64_t s = 0; s < S; ++s) {
    const int64_t dim = C << s;
    if (s >= 1)
      merges_[size_t(s)] = features->register_module(std::to_string(2 * s), std::make_shared<SwinPatchMerging>(dim / 2, c_.layerNormEps));
    auto stage = features->register_module(std::to_string(2 * s + 1), std::make_shared<torch::nn::Module>());
    const int64_t hidden = int64_t(double(dim) * c_.mlpRatio);  // torchvision: int(dim * mlp_ratio)
    std::vector<std::shared_ptr<SwinBlock>> blocks;
    for (int64_t b = 0; b < c_.depths[size_t(s)]; ++b, ++k) {
      // torchvision: stochastic_depth_prob * k / (total - 1) for the k-th block overall (0-based).
      const double dropPath = total > 1 ? c_.dropPath * double(k) / double(total - 1) : 0.0;
      blocks.push_back(stage->register_module(
          std::to_string(b), std::make_shared<SwinBlock>(dim, c_.heads[size_t(s)], ws, b % 2 ? ws / 2 : 0, hidden,
                                                         c_.layerNormEps, c_.attentionDropout, dropPath, geometries_)));
    }
    stages_.push_back(std::move(blocks));
  }
  norm_ = register_module("norm", layerNorm(C << (S - 1), c_.layerNormEps));
}

int64_t SwinEncoder::outFeatures() const { return c_.width << (int64_t(c_.depths.size()) - 1); }

const SwinWindowGeometry& SwinGeometryCache::get(int64_t H, int64_t W, int64_t shift, const torch::Device& device) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto key = std::make_tuple(H, W, shift, device.str());
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  auto g = std::make_unique<SwinWindowGeometry>();
  const int64_t ws = window_, N = ws * ws;
  g->H = H;
  g->W = W;
  g->window = ws;
  g->padH = (H + ws - 1) / ws * ws;
  g->padW = (W + ws - 1) / ws * ws;
  g->padded = g->padH != H || g->padW != W;
  // torchvision: "If window size is larger than feature size, there is no need to shift window", per axis,
  // on the padded size: shift 0 where window >= padded size (i.e. the padded axis is one window).
  g->shiftH = ws >= g->padH ? 0 : shift;
  g->shiftW = ws >= g->padW ? 0 : shift;
  const int64_t nWh = g->padH / ws, nWw = g->padW / ws;
  g->numWindows = nWh * nWw;
  g->identity = !g->padded && g->numWindows == 1 && g->shiftH == 0 && g->shiftW == 0;
  auto to = torch::empty({g->numWindows * N}, torch::kLong);
  auto from = torch::empty({H * W}, torch::kLong);
  auto* t = to.data_ptr<int64_t>();
  auto* f = from.data_ptr<int64_t>();
  for (int64_t wy = 0; wy < nWh; ++wy)
    for (int64_t wx = 0; wx < nWw; ++wx)
      for (int64_t ty = 0; ty < ws; ++ty)
        for (int64_t tx = 0; tx < ws; ++tx) {
          const int64_t i = ((wy * nWw + wx) * ws + ty) * ws + tx;
          // torch.roll(x, -shift): rolled[r] = x[(r + shift) mod padded].
          const int64_t y = (wy * ws + ty + g->shiftH) % g->padH, x = (wx * ws + tx + g->shiftW) % g->padW;
          if (y < H && x < W) {
            t[i] = y * W + x;
            f[y * W + x] = i;
          } else {
            t[i] = H * W;
          }
        }
  if (g->shiftH > 0 || g->shiftW > 0) {
    // torchvision's mask, built on the rolled padded map: regions labelled by slices (0, -ws), (-ws, -shift),
    // (-shift, None) per axis, assigned in that order (with shift 0 on one axis its last slice covers the axis).
    std::vector<int64_t> label(size_t(g->padH * g->padW), 0);
    int64_t count = 0;
    auto slices = [ws](int64_t n, int64_t s) {
      return std::vector<std::pair<int64_t, int64_t>>{pythonSlice(n, 0, -ws), pythonSlice(n, -ws, -s),
                                                      pythonSlice(n, -s, std::nullopt)};
    };
    for (auto [h0, h1] : slices(g->padH, g->shiftH))
      for (auto [w0, w1] : slices(g->padW, g->shiftW)) {
        for (int64_t y = h0; y < h1; ++y)
          for (int64_t x = w0; x < w1; ++x) label[size_t(y * g->padW + x)] = count;
        ++count;
      }
    auto mask = torch::zeros({g->numWindows, 1, N, N}, torch::kFloat);
    auto* m = mask.data_ptr<float>();
    std::vector<int64_t> windowLabel(static_cast<size_t>(N));
    for (int64_t wy = 0; wy < nWh; ++wy)
      for (int64_t wx = 0; wx < nWw; ++wx) {
        for (int64_t ty = 0; ty < ws; ++ty)
          for (int64_t tx = 0; tx < ws; ++tx)
            windowLabel[size_t(ty * ws + tx)] = label[size_t((wy * ws + ty) * g->padW + wx * ws + tx)];
        float* mw = m + (wy * nWw + wx) * N * N;
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j) mw[i * N + j] = windowLabel[size_t(i)] != windowLabel[size_t(j)] ? -100.0f : 0.0f;
      }
    g->mask = mask.to(device);
  }
  // Relative position index (torchvision's and Hugging Face's formula): for query (yi, xi) and key (yj, xj),
  // (yi - yj + ws - 1) * (2 ws - 1) + (xi - xj + ws - 1).
  auto rel = torch::empty({N * N}, torch::kLong);
  auto* r = rel.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) r[i * N + j] = (i / ws - j / ws + ws - 1) * (2 * ws - 1) + (i % ws - j % ws + ws - 1);
  g->relativeIndex = rel.to(device);
  g->toWindows = to.to(device);
  g->fromWindows = from.to(device);
  auto& ref = *g;
  cache_.emplace(key, std::move(g));
  return ref;
}

torch::Tensor SwinEncoder::patchEmbed(const torch::Tensor& x) {
  const int64_t p = c_.patchSize;
  if (x.dim() != 4 || x.size(1) != 3)
    throw invalidArg("Expected images [n, 3, H, W] for the swin encoder but received " + c10::str(x.sizes()));
  const int64_t n = x.size(0), H = x.size(2), W = x.size(3);
  if (H % p != 0 || W % p != 0)
    throw invalidArg("Expected an image size divisible by image.patchSize (" + std::to_string(p) + ") but received " +
                     std::to_string(H) + "x" + std::to_string(W));
  // The patch Conv2d (kernel = stride = patch) as one GEMM over patches, producing NHWC directly:
  // [n, 3, Hp, p, Wp, p] -> [n, Hp, Wp, 3, p, p] matches the weight's [C, 3, p, p] layout.
  const int64_t Hp = H / p, Wp = W / p, C = c_.width;
  auto cols = x.reshape({n, 3, Hp, p, Wp, p}).permute({0, 2, 4, 1, 3, 5}).reshape({n * Hp * Wp, 3 * p * p});
  auto y = torch::addmm(patchConv_->bias, cols, patchConv_->weight.view({C, 3 * p * p}).t()).view({n, Hp, Wp, C});
  return patchNorm_->forward(y);
}

torch::Tensor SwinEncoder::runStage(int64_t s, torch::Tensor h, Dropout& drop) {
  if (s >= 1) h = merges_[size_t(s)]->forward(h);
  for (auto& block : stages_[size_t(s)])
    h = c_.gradientCheckpointing && is_training() ? checkpointBlock(*block, h, drop) : block->run(h, drop);
  return h;
}

torch::Tensor SwinEncoder::bottom(const torch::Tensor& x, int64_t stages, Dropout& drop) {
  if (stages < 0 || stages > numStages())
    throw invalidArg("Expected a stage count in [0, " + std::to_string(numStages()) + "] but received " +
                     std::to_string(stages));
  auto h = patchEmbed(x);
  for (int64_t s = 0; s < stages; ++s) h = runStage(s, h, drop);
  return h;
}

torch::Tensor SwinEncoder::top(const torch::Tensor& h, int64_t from, Dropout& drop) {
  if (from < 0 || from > numStages())
    throw invalidArg("Expected a stage in [0, " + std::to_string(numStages()) + "] but received " + std::to_string(from));
  auto x = h;
  for (int64_t s = from; s < numStages(); ++s) x = runStage(s, x, drop);
  // torchvision: norm -> permute to NCHW -> AdaptiveAvgPool2d(1) -> flatten = the mean over H and W.
  return norm_->forward(x).mean({1, 2});
}

void SwinEncoder::freezeBottom(int64_t count) {
  for (auto& p : patchConv_->parameters()) p.set_requires_grad(false);
  for (auto& p : patchNorm_->parameters()) p.set_requires_grad(false);
  for (int64_t s = 0; s < count && s < numStages(); ++s) {
    if (s >= 1)
      for (auto& p : merges_[size_t(s)]->parameters()) p.set_requires_grad(false);
    for (auto& block : stages_[size_t(s)])
      for (auto& p : block->parameters()) p.set_requires_grad(false);
  }
}

// Checkpoint layouts:
//  - torchvision (`swin_t()`.state_dict(), this encoder's own names); `head.*` and `*.relative_position_index`
//    are ignored.
//  - Hugging Face SwinModel (`microsoft/swin-tiny-patch4-window7-224`, the paper's encoder), with or without
//    SwinForImageClassification's `swin.` prefix. Its config maps onto ImageTowerConfig as: embed_dim -> width,
//    depths -> depths, num_heads -> heads, window_size -> windowSize, patch_size -> patchSize, mlp_ratio ->
//    mlpRatio, layer_norm_eps -> layerNormEps, drop_path_rate -> dropPath, attention_probs_dropout_prob ->
//    attentionDropout (hidden_act "gelu" = erf GELU, qkv_bias true, use_absolute_embeddings false: the only
//    variant mapped). Both use the same relative position index formula and the same PatchMerging order.
//    One difference: where a feature map is no larger than the window, Hugging Face shrinks the window to the
//    map (and stops shifting) while torchvision pads the map to a window multiple (shift 0 once the padded
//    map is one window). They agree whenever every stage's map is a window multiple or exactly one window,
//    e.g. 224x224 inputs with patch 4 and window 7 (maps 56, 28, 14, 7); morec computes torchvision's.
MappedStateDict SwinEncoder::mapStateDict(const std::map<std::string, torch::Tensor>& stateDict) const {
  MappedStateDict out;
  std::set<std::string> own;
  for (const auto& kv : named_parameters(true)) own.insert(kv.key());
  auto endsWith = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  // Hugging Face names -> torchvision's; q/k/v parts are collected and joined below.
  static const std::regex blockKey(R"(encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+))");
  static const std::regex downsampleKey(R"(encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias))");
  static const std::map<std::string, std::string> blockParts = {
      {"layernorm_before.", "norm1."},
      {"attention.self.relative_position_bias_table", "attn.relative_position_bias_table"},
      {"attention.output.dense.", "attn.proj."},
      {"layernorm_after.", "norm2."},
      {"intermediate.dense.", "mlp.0."},
      {"output.dense.", "mlp.3."},
  };
  std::map<std::string, std::array<std::pair<std::string, torch::Tensor>, 3>> qkvParts;
  for (const auto& [key, tensor] : stateDict) {
    // Wrapper prefixes (DataParallel's module., Lightning's model., backbone., SwinForImageClassification's
    // swin.); encoder. too, except before Hugging Face's own encoder.layers.
    std::string name = key;
    for (bool stripped = true; stripped && !own.count(name);) {
      stripped = false;
      for (const char* prefix : {"module.", "model.", "backbone.", "swin.", "encoder."})
        if (name.rfind(prefix, 0) == 0 && !(std::string(prefix) == "encoder." && name.rfind("encoder.layers.", 0) == 0)) {
          name = name.substr(std::strlen(prefix));
          stripped = true;
          break;
        }
    }
    if (own.count(name)) {
      out.tensors[name] = tensor;
      out.sourceOf[name] = key;
      continue;
    }
    if (endsWith(name, "relative_position_index") || name.rfind("head.", 0) == 0 || name.rfind("classifier.", 0) == 0 ||
        name.rfind("pooler.", 0) == 0 || name == "embeddings.mask_token") {
      out.ignored.push_back(key);
      continue;
    }
    std::string target;
    std::smatch m;
    if (name.rfind("embeddings.patch_embeddings.projection.", 0) == 0) {
      target = "features.0.0." + name.substr(std::string("embeddings.patch_embeddings.projection.").size());
    } else if (name.rfind("embeddings.norm.", 0) == 0) {
      target = "features.0.2." + name.substr(std::string("embeddings.norm.").size());
    } else if (name.rfind("layernorm.", 0) == 0) {
      target = "norm." + name.substr(std::string("layernorm.").size());
    } else if (std::regex_match(name, m, downsampleKey)) {
      target = "features." + std::to_string(2 * std::stoll(m[1]) + 2) + "." + m[2].str() + "." + m[3].str();
    } else if (std::regex_match(name, m, blockKey)) {
      const std::string prefix = "features." + std::to_string(2 * std::stoll(m[1]) + 1) + "." + m[2].str() + ".";
      const std::string rest = m[3];
      int part = -1;
      for (int i = 0; i < 3; ++i) {
        const std::string qkv = std::string("attention.self.") + (i == 0 ? "query." : i == 1 ? "key." : "value.");
        if (rest.rfind(qkv, 0) == 0) {
          part = i;
          target = prefix + "attn.qkv." + rest.substr(qkv.size());
        }
      }
      if (part >= 0) {
        if (own.count(target)) {
          qkvParts[target][size_t(part)] = {key, tensor};
          continue;
        }
      } else {
        for (const auto& [from, to] : blockParts)
          if (rest.rfind(from, 0) == 0) target = prefix + to + rest.substr(from.size());
      }
    }
    if (!target.empty() && own.count(target)) {
      out.tensors[target] = tensor;
      out.sourceOf[target] = key;
    } else {
      out.unexpected.push_back(key);
    }
  }
  // Hugging Face keeps Q, K and V as three Linear layers; torchvision's qkv is their rows stacked in that
  // order. With one of them absent the joined tensor stays missing (the import names it).
  for (auto& [target, parts] : qkvParts) {
    if (!parts[0].second.defined() || !parts[1].second.defined() || !parts[2].second.defined()) continue;
    std::vector<torch::Tensor> ts;
    for (auto& p : parts) ts.push_back(p.second);
    auto sameLayout = [&](const torch::Tensor& t) {
      return t.dim() == ts[0].dim() && t.sizes().slice(1) == ts[0].sizes().slice(1) && t.scalar_type() == ts[0].scalar_type();
    };
    const bool joinable = ts[0].dim() >= 1 && sameLayout(ts[1]) && sameLayout(ts[2]);
    // Parts that do not stack are reported as the query's (mis-shaped) tensor.
    out.tensors[target] = joinable ? torch::cat(ts) : ts[0];
    out.sourceOf[target] = parts[0].first + " + " + parts[1].first + " + " + parts[2].first;
  }
  return out;
}

std::shared_ptr<ImageEncoder> makeSwin(const ImageTowerConfig& config) {
  if (config.depths.empty()) throw invalidArg("Expected at least one stage in image.depths for the swin encoder");
  if (config.heads.size() != config.depths.size())
    throw invalidArg("Expected image.heads to have one entry per stage (" + std::to_string(config.depths.size()) +
                     ", as image.depths) but it has " + std::to_string(config.heads.size()));
  for (size_t i = 0; i < config.heads.size(); ++i)
    if ((config.width << i) % config.heads[i] != 0)
      throw invalidArg("Expected image.heads[" + std::to_string(i) + "] to divide the stage's width " +
                       std::to_string(config.width << i) + " but received " + std::to_string(config.heads[i]));
  if (config.imageSize % config.patchSize != 0)
    throw invalidArg("Expected image.imageSize (" + std::to_string(config.imageSize) + ") to be divisible by image.patchSize (" +
                     std::to_string(config.patchSize) + ") for the swin encoder");
  if (int64_t(double(config.width) * config.mlpRatio) < 1)
    throw invalidArg("Expected image.mlpRatio * image.width >= 1 (the MLP's hidden width) but received " +
                     std::to_string(config.mlpRatio) + " * " + std::to_string(config.width));
  return std::make_shared<SwinEncoder>(config);
}

}  // namespace morec
