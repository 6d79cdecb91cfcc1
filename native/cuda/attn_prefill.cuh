// Prefill attention, FlashAttention-2 structure on tensor cores (included once per head dim
// by attn_prefill_{64,128,256}.cu, so each head dim compiles in its own translation unit).
//
// A block owns BM = 64 "query vectors" of one sequence and one GQA group: R consecutive rows
// x HC query heads of the group (HC = the largest divisor of G not above 64, R = 64 / HC), so
// each K/V tile it loads serves every head of the group. Four warps each own 16 vectors:
// S = Q·Kᵀ and O += P·V run as mma.sync m16n8k16 (bf16 in, fp32 accumulate) from ldmatrix
// fragments; softmax is online, in registers, in the exp2 domain. Key tiles (BN keys) cover
// only [lo(first row), last row]: tiles wholly outside the causal band or the window are never
// visited, and only tiles that cross the diagonal, the window's lower edge or the end are
// masked. K/V are read through the block table with cp.async, two stages deep. Shared memory
// rows are XOR-swizzled in 16-byte chunks, so ldmatrix and cp.async are free of bank
// conflicts.
#pragma once

#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cp_async.cuh"

namespace mixattn {
namespace cuda {

template <int D>
struct PrefillTraits {
  static constexpr int BM = 64;                 // query vectors per block
  static constexpr int BN = D <= 128 ? 64 : 32;  // keys per tile
  static constexpr int kThreads = 128;
  static constexpr int CPR = D / 8;  // 16-byte chunks per row
  static constexpr size_t smem = size_t(BM + 4 * BN) * D * sizeof(bf16);
};

// Element offset of (row, 16-byte chunk) in a swizzled [rows][D] bf16 tile.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

template <int D>
__global__ void __launch_bounds__(128) prefillKernel(AttnArgs a, int HC, int R, DeviceError* err) {
  using Tr = PrefillTraits<D>;
  constexpr int BM = Tr::BM, BN = Tr::BN, CPR = Tr::CPR;
  constexpr float kLog2e = 1.4426950408889634f;
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smemRaw);
  bf16* sK = sQ + BM * D;      // 2 stages of [BN][D]
  bf16* sV = sK + 2 * BN * D;  // 2 stages of [BN][D]
  __shared__ int sPos[BM];

  // Which (sequence, row tile) this block owns; the heaviest (last) tiles of each sequence
  // get the lowest block ids so they start first.
  int s = -1, tile = 0;
  for (int i = 0, item = blockIdx.x; i < a.numSeqs; ++i) {
    const int n = (a.numNew[i] + R - 1) / R;
    if (item < n) {
      s = i;
      tile = n - 1 - item;
      break;
    }
    item -= n;
  }
  if (s < 0) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int G = a.numHeads / a.numKvHeads, head0 = blockIdx.y * HC, g = head0 / G;
  const int r0 = tile * R, rows = min(R, a.numNew[s] - r0);
  const int pFirst = a.pastLen[s] + r0, pLast = pFirst + rows - 1;
  const int tok0 = a.tokenStart[s] + r0;
  const int kBegin = keyLo(pFirst, a.window), kEnd = pLast + 1;
  const int loLast = keyLo(pLast, a.window);

  // Q: vector i = (row i / HC, head i % HC); vectors past R*HC or past the rows are zeros.
  const bf16* q = static_cast<const bf16*>(a.q);
  for (int c = tid; c < BM * CPR; c += Tr::kThreads) {
    const int i = c / CPR, ch = c % CPR, r = i / HC;
    const bool ok = i < R * HC && r < rows;
    const bf16* src = ok ? q + ((size_t)(tok0 + r) * a.numHeads + head0 + i % HC) * D + ch * 8 : q;
    cpAsync16(sQ + swz<D>(i, ch), src, ok);
  }
  if (tid < BM) sPos[tid] = (tid < R * HC && tid / HC < rows) ? pFirst + tid / HC : -1;

  auto loadKv = [&](int n, int stage) {
    const int kStart = kBegin + n * BN;
    bf16* k = sK + stage * BN * D;
    bf16* v = sV + stage * BN * D;
    static_assert(BN * CPR % Tr::kThreads == 0, "tile chunks must divide among the threads");
#pragma unroll
    for (int it = 0; it < BN * CPR / Tr::kThreads; ++it) {
      const int c = tid + it * Tr::kThreads, j = c / CPR, ch = c % CPR, key = kStart + j;
      // A bad page is recorded and read as zeros; the step then fails at download.
      const int pg = key < kEnd ? lookupPage(a, s, key, err, kOpAttention) : -1;
      const char* base = a.arena + (pg < 0 ? 0 : (size_t)pg * a.pageBytes);
      const int off = blockOffset(a, key);
      cpAsync16(k + swz<D>(j, ch), base + kOffset(a, g, off, sizeof(bf16)) + ch * 16, pg >= 0);
      cpAsync16(v + swz<D>(j, ch), base + vOffset(a, g, off, sizeof(bf16)) + ch * 16, pg >= 0);
    }
    cpAsyncCommit();
  };

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int vq0 = warp * 16 + lane / 4;  // this thread's two query vectors: vq0, vq0 + 8
  const int t4 = lane % 4;

  loadKv(0, 0);  // commits Q's copies with the first tile
  const int nTiles = (kEnd - kBegin + BN - 1) / BN;
  int pos[2] = {-1, -1};
  for (int n = 0; n < nTiles; ++n) {
    const int stage = n & 1, kStart = kBegin + n * BN;
    if (n + 1 < nTiles) {
      loadKv(n + 1, stage ^ 1);
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    if (n == 0) pos[0] = sPos[vq0], pos[1] = sPos[vq0 + 8];
    const bf16* k = sK + stage * BN * D;
    const bf16* v = sV + stage * BN * D;

    // S = Q · Kᵀ for this warp's 16 vectors x BN keys.
    float sc[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.f;
    const int mi = lane / 8, ri = lane % 8;  // ldmatrix: which 8x8 matrix, which row of it
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4];
      ldmatrixX4(qa, sQ + swz<D>(warp * 16 + (mi & 1) * 8 + ri, 2 * kk + (mi >> 1)));
#pragma unroll
      for (int nb = 0; nb < BN / 16; ++nb) {
        uint32_t kb[4];
        ldmatrixX4(kb, k + swz<D>(nb * 16 + (mi >> 1) * 8 + ri, 2 * kk + (mi & 1)));
        mmaBf16(sc[2 * nb], qa, kb[0], kb[1]);
        mmaBf16(sc[2 * nb + 1], qa, kb[2], kb[3]);
      }
    }

    // Scale, soft-cap, mask; then the online softmax update of rows vq0 and vq0 + 8.
    const bool mask = kStart + BN - 1 > pFirst || kStart < loLast || kStart + BN > kEnd;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = capScore(sc[i][e], a.scale, a.softcap) * kLog2e;
        if (mask) {
          const int key = kStart + i * 8 + t4 * 2 + (e & 1), p = pos[e >> 1];
          if (p < 0 || key > p || key < keyLo(p, a.window)) x = -INFINITY;
        }
        sc[i][e] = x;
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) mx = fmaxf(mx, fmaxf(sc[i][2 * h], sc[i][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mNew = fmaxf(m[h], mx);
      const float corr = mNew == -INFINITY ? 1.f : exp2f(m[h] - mNew);
      const float sub = mNew == -INFINITY ? 0.f : mNew;
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) {
        sc[i][2 * h] = exp2f(sc[i][2 * h] - sub);
        sc[i][2 * h + 1] = exp2f(sc[i][2 * h + 1] - sub);
        sum += sc[i][2 * h] + sc[i][2 * h + 1];
      }
      l[h] = l[h] * corr + sum;  // per-thread partial; the quad is summed at the end
      m[h] = mNew;
      // Unconditional here: with the decode kernel's skip-when-no-max-moved warp vote this
      // kernel measured 91 instead of 121 TFLOP/s (H100, causal 8k): the branch splits the mma
      // stream the compiler interleaves these multiplies with.
#pragma unroll
      for (int i = 0; i < D / 8; ++i) o[i][2 * h] *= corr, o[i][2 * h + 1] *= corr;
    }

    // O += P · V: the S accumulators are already laid out as the A fragments of P.
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const uint32_t pa[4] = {packBf16(sc[2 * j][0], sc[2 * j][1]),
                              packBf16(sc[2 * j][2], sc[2 * j][3]),
                              packBf16(sc[2 * j + 1][0], sc[2 * j + 1][1]),
                              packBf16(sc[2 * j + 1][2], sc[2 * j + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldmatrixX4Trans(vb, v + swz<D>(j * 16 + (mi & 1) * 8 + ri, 2 * dp + (mi >> 1)));
        mmaBf16(o[2 * dp], pa, vb[0], vb[1]);
        mmaBf16(o[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // the next iteration's loads overwrite the other stage
  }

  // Normalise and store (bf16x2 per thread per 8-column tile).
  bf16* out = static_cast<bf16*>(a.out);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int vq = vq0 + 8 * h;
    if (pos[h] < 0) continue;
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    bf16* dst = out + ((size_t)(tok0 + vq / HC) * a.numHeads + head0 + vq % HC) * D + t4 * 2;
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      *reinterpret_cast<__nv_bfloat162*>(dst + i * 8) =
          __floats2bfloat162_rn(o[i][2 * h] * inv, o[i][2 * h + 1] * inv);
  }
}

// The host side of one head dim: grid, shared memory, launch.
template <int D>
void launchPrefill(const Ctx& c, const AttnArgs& a) {
  using Tr = PrefillTraits<D>;
  const int G = a.numHeads / a.numKvHeads;
  int HC = 1;
  for (int d = 1; d <= G && d <= Tr::BM; ++d)
    if (G % d == 0) HC = d;
  const int R = Tr::BM / HC;
  const unsigned items = unsigned((a.numTokens + R - 1) / R + a.numSeqs);
  const dim3 grid(items, unsigned(a.numHeads / HC));
  check(cudaFuncSetAttribute(prefillKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(Tr::smem)), "attention (prefill)");
  prefillKernel<D><<<grid, Tr::kThreads, Tr::smem, c.stream>>>(a, HC, R, c.err);
  checkLaunch("attention (prefill)");
}

}  // namespace cuda
}  // namespace mixattn
