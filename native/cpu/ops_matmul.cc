// out[M, N] = in[M, K] · W[N, K]ᵀ (+ bias), and the logits head.
//
// Two kernels:
// - M <= kGemvMaxM (decode, small batches): each group of 4 W rows is streamed once and
//   dotted with the few input rows while it is in L1; work is split over N so all cores pull
//   on memory bandwidth. bf16 rows widen with a shift and a mask (see splitPairs).
// - otherwise (prefill): GotoBLAS-style blocking. A task owns kNC rows of W and kMC input
//   rows; per kKC slice it packs its W rows transposed into fp32 panels of 8 (bf16 widened
//   once here, not once per input row) and runs the register tile of tile.h over them, so
//   each W element loaded is reused for kMC input rows.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu/simd.h"
#include "cpu/tile.h"

namespace mixattn {
namespace cpu {

namespace {

constexpr int kNR = kTileCols;  // W rows per packed panel
constexpr int kKC = 256;  // K slice: one packed panel (kKC x kNR fp32 = 8 KB) sits in L1
constexpr int kNC = 64;   // W rows per task: the packed slice (64 KB) sits in L2
constexpr int kMC = 96;   // input rows per task (a multiple of kTileRows)
constexpr int kGemvMaxM = 16;  // measured: below this, packing costs more than it saves
constexpr int kGemvRows = 16;  // W rows per gemv task

inline float widen(float x) { return x; }
inline float widen(uint16_t x) { return bf16ToFloat(x); }

// ---- decode: streamed dot products ----

// Dots x with 4 W rows at once: each x vector loaded serves 4 rows of W; two accumulators
// per row (8 columns per step) keep the add chains short.
void dot4(const float* __restrict x, const float* const* w, int K, float* out4) {
  const float *__restrict w0 = w[0], *__restrict w1 = w[1], *__restrict w2 = w[2],
              *__restrict w3 = w[3];
  F32x4 a0 = zero4(), a1 = zero4(), a2 = zero4(), a3 = zero4();
  F32x4 b0 = zero4(), b1 = zero4(), b2 = zero4(), b3 = zero4();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    F32x4 x0 = load4(x + k), x1 = load4(x + k + 4);
    a0 += x0 * load4(w0 + k);
    b0 += x1 * load4(w0 + k + 4);
    a1 += x0 * load4(w1 + k);
    b1 += x1 * load4(w1 + k + 4);
    a2 += x0 * load4(w2 + k);
    b2 += x1 * load4(w2 + k + 4);
    a3 += x0 * load4(w3 + k);
    b3 += x1 * load4(w3 + k + 4);
  }
  float s[4] = {hsum4(a0 + b0), hsum4(a1 + b1), hsum4(a2 + b2), hsum4(a3 + b3)};
  for (; k < K; ++k)
    for (int r = 0; r < 4; ++r) s[r] += x[k] * w[r][k];
  for (int r = 0; r < 4; ++r) out4[r] = s[r];
}

// bf16 W: x comes pre-split by parity (splitPairs), so each 8 weights widen with one load,
// a shift and a mask instead of unpacking.
void dot4(const float* __restrict x, const uint16_t* const* w, int K, float* out4) {
  F32x4 ae[4] = {zero4(), zero4(), zero4(), zero4()};
  F32x4 ao[4] = {zero4(), zero4(), zero4(), zero4()};
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    F32x4 xe = load4(x + k), xo = load4(x + k + 4);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      F32x4 e, o;
      loadBf16Split(w[r] + k, e, o);
      ae[r] += xe * e;
      ao[r] += xo * o;
    }
  }
  for (int r = 0; r < 4; ++r) {
    float s = hsum4(ae[r] + ao[r]);
    for (int kk = k; kk < K; ++kk) s += x[kk] * bf16ToFloat(w[r][kk]);
    out4[r] = s;
  }
}

// Rows of W, 4 at a time (a tail of 1-3 rows repeats the last row and drops the extras),
// each dotted with the M input rows while it is in L1.
template <class WT>
void gemvRows(float* out, const float* x, const WT* w, const float* bias, int M, int N, int K,
              int n0, int n1) {
  for (int n = n0; n < n1; n += 4) {
    const WT* rows[4];
    for (int r = 0; r < 4; ++r) rows[r] = w + size_t(std::min(n + r, n1 - 1)) * K;
    for (int m = 0; m < M; ++m) {
      float r4[4];
      dot4(x + size_t(m) * K, rows, K, r4);
      for (int r = 0; r < 4 && n + r < n1; ++r)
        out[size_t(m) * N + n + r] = r4[r] + (bias ? bias[n + r] : 0.f);
    }
  }
}

// ---- prefill: packed panels and a register tile ----

// dst[p][k][j] = W[p*kNR + j][k] for the nc x kc block at w (row stride K); rows past nc
// are zero so the tile can always compute kNR columns.
template <class WT>
void packPanels(float* __restrict dst, const WT* __restrict w, int K, int nc, int kc) {
  int panels = (nc + kNR - 1) / kNR;
  for (int p = 0; p < panels; ++p) {
    float* d = dst + size_t(p) * kc * kNR;
    for (int j = 0; j < kNR; ++j) {
      int row = p * kNR + j;
      if (row < nc) {
        const WT* src = w + size_t(row) * K;
        for (int k = 0; k < kc; ++k) d[k * kNR + j] = widen(src[k]);
      } else {
        for (int k = 0; k < kc; ++k) d[k * kNR + j] = 0.f;
      }
    }
  }
}

template <class WT>
void gemmTask(float* out, const float* in, const WT* w, const float* bias, int N, int K,
              int m0, int m1, int n0, int n1, float* pack) {
  int nc = n1 - n0;
  for (int k0 = 0; k0 < K; k0 += kKC) {
    int kc = std::min(kKC, K - k0);
    packPanels(pack, w + size_t(n0) * K + k0, K, nc, kc);
    for (int p = 0; p * kNR < nc; ++p) {
      // All kMC input rows against this panel: the panel stays in L1 throughout.
      multiplyStrip(m1 - m0, kc, in + size_t(m0) * K + k0, K, pack + size_t(p) * kc * kNR, kNR,
                    out + size_t(m0) * N + n0 + p * kNR, N, std::min(kNR, nc - p * kNR),
                    k0 > 0, bias ? bias + n0 + p * kNR : nullptr);
    }
  }
}

template <class WT>
void matmulTyped(ThreadPool& pool, float* out, const float* in, const WT* w, const float* bias,
                 int M, int N, int K) {
  double macsPerRow = double(M) * K;  // per W row
  if (M <= kGemvMaxM) {
    std::vector<float> split;
    const float* x = in;
    if (std::is_same<WT, uint16_t>::value) {
      split.resize(size_t(M) * K);
      for (int m = 0; m < M; ++m) splitPairs(split.data() + size_t(m) * K, in + size_t(m) * K, K);
      x = split.data();
    }
    size_t tasks = size_t((N + kGemvRows - 1) / kGemvRows);
    size_t grain = size_t(std::max(1.0, 65536.0 / (macsPerRow * kGemvRows)));
    pool.parallelFor(tasks, [&](size_t b, size_t e) {
      int n0 = int(b) * kGemvRows, n1 = std::min(N, int(e) * kGemvRows);
      gemvRows(out, x, w, bias, M, N, K, n0, n1);
    }, grain);
    return;
  }
  int nBlocks = (N + kNC - 1) / kNC, mBlocks = (M + kMC - 1) / kMC;
  size_t tasks = size_t(nBlocks) * mBlocks;
  pool.parallelFor(tasks, [&](size_t b, size_t e) {
    thread_local std::vector<float> pack;
    pack.resize(size_t(kNC) * kKC);
    for (size_t t = b; t < e; ++t) {
      // Consecutive tasks share the input rows and walk along W.
      int mb = int(t / nBlocks), nb = int(t % nBlocks);
      int m0 = mb * kMC, n0 = nb * kNC;
      gemmTask(out, in, w, bias, N, K, m0, std::min(M, m0 + kMC), n0, std::min(N, n0 + kNC),
               pack.data());
    }
  });
}

}  // namespace

void matmul(ThreadPool& pool, float* out, const float* in, const void* w, DType wType,
            const void* bias, int M, int N, int K) {
  if (M <= 0 || N <= 0) return;
  std::vector<float> biasF;
  if (bias) {
    biasF.resize(size_t(N));
    toFloat(biasF.data(), bias, wType, size_t(N));
  }
  const float* b = bias ? biasF.data() : nullptr;
  if (K <= 0) {
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) out[size_t(m) * N + n] = b ? b[n] : 0.f;
    return;
  }
  if (wType == DType::F32)
    matmulTyped(pool, out, in, static_cast<const float*>(w), b, M, N, K);
  else
    matmulTyped(pool, out, in, static_cast<const uint16_t*>(w), b, M, N, K);
}

void logits(ThreadPool& pool, float* out, const float* hidden, const void* w, DType wType,
            int M, int V, int K, float softcap) {
  matmul(pool, out, hidden, w, wType, nullptr, M, V, K);
  if (softcap > 0) {
    size_t n = size_t(M) * V;
    pool.parallelFor(n, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) out[i] = softcap * std::tanh(out[i] / softcap);
    }, 8192);
  }
}

}  // namespace cpu
}  // namespace mixattn
