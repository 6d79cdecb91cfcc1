// Attention over low-rank keys (Backend::attentionLowRankKeys, Eigen Attention): the pages
// hold per key c[kDim], the coefficients of the pre-RoPE key in a basis U [headDim][kDim]
// shared by the layer's KV heads; the kernels expand k = U·c on the tensor cores, rotate it at
// the key's position in registers and score it, so full-width keys never reach memory. With
// `Expand` false the same kernels read plain keys (kDim == headDim) and serve attention()
// when V is narrower than K. Included once per head dim by attn_lowrank_{64,128,256}.cu.
//
// Both kernels take 64-key tiles through the block table: C (or K) and V rows come in with
// cp.async (f32 pages: loaded and rounded to bf16 on the way, exact for what the bf16
// activations wrote), two stages deep, and the page ids of the next tile are looked up once
// per key by 64 threads into shared memory. Each of the 4 warps expands 16 keys of a tile:
// C[16 × kPad] · Uᵀ (U as bf16 in shared memory, kDim zero-padded to 16) is mma.sync
// m16n8k16 with fp32 accumulators, in chunks of 32 frequency pairs (i, i + D/2), which the
// same thread holds, so RoPE is applied to the accumulators: cos/sin of (p0 + j)·θ_i come
// from the warp's base angle p0·θ_i (reduced mod 2π in double, then __sincosf) composed with a
// host table of j·θ_i, j < 16.
//
//  - decode layout (lowRankDecodeKernel): a block is (row, ≤ 8 query heads of one KV head,
//    split). Scores are computed transposed, Sᵀ[16 keys × 8 heads] = K · Qᵀ, so the rotated
//    accumulators are already the A fragments (no shared-memory round trip) and the 8 heads
//    fill N instead of padding M to 16. Pᵀ becomes the B fragment of Oᵀ[v × 8 heads] = Vᵀ·Pᵀ
//    by one movmatrix.trans per 8 × 8 block. Each warp keeps its own online-softmax state
//    over its 16 keys of every tile; the 4 states are merged at the end; splits of long rows
//    are merged by the last block of each (row, head group) to finish (split_merge.cuh), or
//    by attn_decode.cu's combine kernel where that cannot run.
//  - prefill layout (lowRankPrefillKernel): a block is 64 query vectors (R rows × HC heads of
//    one KV head, FlashAttention-2 as attn_prefill.cuh: each warp 16 vectors against the
//    whole tile); the expanded tile goes to shared memory as bf16 once for all of them.
//    Key tiles cover [window start of the first row, last row]; edge tiles are masked.
//
// Where two stages do not fit in shared memory (ranks near 256 at head dim 256) the kernels
// run with one: the next tile's copies are issued after the current one is consumed.
#pragma once

#include <climits>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cp_async.cuh"
#include "cuda/lowrank_layout.h"
#include "cuda/split_merge.cuh"

namespace mixattn {
namespace cuda {

constexpr int kLrTileKeys = kLowRankTileKeys;
constexpr int kLrThreads = 128;

// 8 × 8 bf16 transpose inside the warp's fragment registers.
__device__ __forceinline__ uint32_t movTrans(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// 16 bytes of a row into shared memory as bf16: cp.async from bf16 pages; from f32 pages
// 32 bytes loaded and rounded (zeros when !valid, nothing read).
template <typename KT>
__device__ __forceinline__ void copyRowChunk(bf16* dst, const char* src, bool valid) {
  if constexpr (sizeof(KT) == 2) {
    cpAsync16(dst, src, valid);
  } else {
    uint4 w = make_uint4(0, 0, 0, 0);
    if (valid) {
      const float4 x0 = *reinterpret_cast<const float4*>(src);
      const float4 x1 = *reinterpret_cast<const float4*>(src + 16);
      w = make_uint4(packBf16(x0.x, x0.y), packBf16(x0.z, x0.w), packBf16(x1.x, x1.y),
                     packBf16(x1.z, x1.w));
    }
    *reinterpret_cast<uint4*>(dst) = w;
  }
}

// U (fp32, [D][kDim]) as bf16 [D][ldu], zero past kDim, and the rotation table [16][D/2] into
// shared memory. Both are constant across the step: the kernels load them before gridDepWait().
template <int D, bool Expand>
__device__ __forceinline__ void lrLoadBasis(unsigned char* smem, const LrSmem& L, int kDim,
                                            const LowRankArgs& lr) {
  if constexpr (Expand) {
    bf16* u = reinterpret_cast<bf16*>(smem + L.u);
    for (int e = threadIdx.x; e < D * L.kc; e += kLrThreads) {
      const int i = e / L.kc, j = e % L.kc;
      u[i * L.ldu + j] = __float2bfloat16_rn(j < kDim ? lr.basis[(size_t)i * kDim + j] : 0.f);
    }
    float2* r = reinterpret_cast<float2*>(smem + L.rot);
    for (int e = threadIdx.x; e < 16 * (D / 2); e += kLrThreads)
      r[(e / (D / 2)) * L.ldr + e % (D / 2)] = reinterpret_cast<const float2*>(lr.rot)[e];
  }
}

// The per-block state every layout shares: the page ids of a tile, the copies of a tile, and
// the warp's base angles (U and the rotation table: lrLoadBasis).
template <int D, typename KT, bool Expand>
struct LrTiles {
  const AttnArgs& a;
  const LowRankArgs& lr;
  const LrSmem L;  // by value: a reference would put the layout on the stack
  unsigned char* smem;
  int s, g, kEnd;
  DeviceError* err;

  __device__ bf16* stageC(int st) const { return reinterpret_cast<bf16*>(smem + L.stage + st * L.stageBytes); }
  __device__ bf16* stageV(int st) const { return stageC(st) + kLrTileKeys * L.ldc; }
  __device__ int* pages(int pb) const { return reinterpret_cast<int*>(smem + L.page) + pb * kLrTileKeys; }
  __device__ float2* base(int warp) const { return reinterpret_cast<float2*>(smem + L.base) + warp * (D / 2); }
  __device__ const float2* rot() const { return reinterpret_cast<const float2*>(smem + L.rot); }
  __device__ const bf16* basis() const { return reinterpret_cast<const bf16*>(smem + L.u); }

  // Page ids of keys kStart .. kStart + 63 (-1 past kEnd or where the lookup failed) into
  // buffer pb (two, so a tile's lookups never wait for the previous tile's copies).
  __device__ void lookup(int kStart, int pb) const {
    if (threadIdx.x < kLrTileKeys) {
      const int key = kStart + threadIdx.x;
      pages(pb)[threadIdx.x] = key < kEnd ? lookupPage(a, s, key, err, lr.op) : -1;
    }
  }
  // C (or K) and V rows of the tile (page ids in buffer pb) into stage st, then one commit.
  __device__ void issue(int kStart, int pb, int st) const {
    const int* pg = pages(pb);
    const int cprC = L.kc / 8, cprV = L.vPad / 8, kCh = a.kDim / 8, vCh = a.vDim / 8;
    bf16* c = stageC(st);
    bf16* v = stageV(st);
    for (int e = threadIdx.x; e < kLrTileKeys * cprC; e += kLrThreads) {
      const int j = e / cprC, ch = e % cprC, p = pg[j], key = kStart + j;
      const bool ok = p >= 0 && ch < kCh;
      const char* src = a.arena + (ok ? (size_t)p * a.pageBytes +
                                            kOffset(a, g, blockOffset(a, key), sizeof(KT)) +
                                            ch * 8 * sizeof(KT)
                                      : 0);
      copyRowChunk<KT>(c + j * L.ldc + ch * 8, src, ok);
    }
    for (int e = threadIdx.x; e < kLrTileKeys * cprV; e += kLrThreads) {
      const int j = e / cprV, ch = e % cprV, p = pg[j], key = kStart + j;
      const bool ok = p >= 0 && ch < vCh;
      const char* src = a.arena + (ok ? (size_t)p * a.pageBytes +
                                            vOffset(a, g, blockOffset(a, key), sizeof(KT)) +
                                            ch * 8 * sizeof(KT)
                                      : 0);
      copyRowChunk<KT>(v + j * L.ldv + ch * 8, src, ok);
    }
    cpAsyncCommit();
  }
  // cos/sin of pos·θ_i for the warp's first key: the angle reduced to [-π, π] in double
  // (exact to ~1e-11 rad at any position an int can hold), then the fast sincos (error
  // < 4e-7 there; sincosf would keep a local-memory slow path for huge arguments).
  __device__ void warpBase(int pos) const {
    if constexpr (Expand) {
      float2* b = base(threadIdx.x / 32);
      for (int i = threadIdx.x % 32; i < D / 2; i += 32) {
        const double ang = double(pos) * lr.invFreq[i];
        const double red = ang - rint(ang * 0.15915494309189535) * 6.283185307179586;
        float sn, cs;
        __sincosf(float(red), &sn, &cs);
        b[i] = make_float2(cs, sn);
      }
    }
  }
};

// (x0, x1) rotated by the angle A + B, given cos/sin of A and of B.
__device__ __forceinline__ void rotatePair(float& x0, float& x1, float cA, float sA, float cB,
                                           float sB) {
  const float c = cA * cB - sA * sB, s = sA * cB + cA * sB;
  const float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
  x0 = y0;
  x1 = y1;
}

// The warp's 16 keys (rows of cT) expanded and rotated, in chunks: emit(nc, acc) gets the
// fp32 accumulators of columns [nc, nc + 32) (acc[0..3], one m16n8 tile per 8 columns) and
// of their RoPE partners [D/2 + nc, D/2 + nc + 32) (acc[4..7]), key r = lane/4 (+8) of the
// warp's slice in rows 0/1 and 2/3 of each tile.
template <int D, class Emit>
__device__ __forceinline__ void expandRotate16(const bf16* cT, int ldc, int kc, const bf16* u,
                                               int ldu, const float2* base, const float2* rot,
                                               int ldr, Emit&& emit) {
  constexpr int H2 = D / 2;
  const int lane = threadIdx.x % 32, mi = lane / 8, ri = lane % 8, t4 = lane % 4, r0 = lane / 4;
#pragma unroll
  for (int nc = 0; nc < H2; nc += 32) {
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    for (int kk = 0; kk < kc / 16; ++kk) {
      uint32_t af[4];
      ldmatrixX4(af, cT + ((mi & 1) * 8 + ri) * ldc + (2 * kk + (mi >> 1)) * 8);
#pragma unroll
      for (int jp = 0; jp < 4; ++jp) {
        const int n0 = (jp < 2 ? nc : H2 + nc) + 16 * (jp & 1);
        uint32_t bf[4];
        ldmatrixX4(bf, u + (n0 + (mi >> 1) * 8 + ri) * ldu + (2 * kk + (mi & 1)) * 8);
        mmaBf16(acc[2 * jp], af, bf[0], bf[1]);
        mmaBf16(acc[2 * jp + 1], af, bf[2], bf[3]);
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = nc + 8 * j + 2 * t4, r = r0 + 8 * h;
        const float4 b = *reinterpret_cast<const float4*>(base + i);  // frequencies i, i + 1
        const float4 o = *reinterpret_cast<const float4*>(rot + r * ldr + i);
        rotatePair(acc[j][2 * h], acc[4 + j][2 * h], b.x, b.y, o.x, o.y);
        rotatePair(acc[j][2 * h + 1], acc[4 + j][2 * h + 1], b.z, b.w, o.z, o.w);
      }
    emit(nc, acc);
  }
}

template <int D, typename KT, bool Expand>
__global__ void __launch_bounds__(kLrThreads)
    lowRankDecodeKernel(AttnArgs a, LowRankArgs lr, int HC, int splits, int chunk, int stages,
                        float* partO, float* partLse, unsigned* counters, DeviceError* err) {
  constexpr int BN = kLrTileKeys, H2 = D / 2;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;
  extern __shared__ __align__(16) unsigned char smem[];
  const LrSmem L(D, false, Expand, a.kDim, a.vDim, stages);
  const int sp = blockIdx.x, t = blockIdx.z, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int mi = lane / 8, ri = lane % 8, t4 = lane % 4, r0 = lane / 4;
  const int head0 = blockIdx.y * HC, g = head0 / (a.numHeads / a.numKvHeads), vDim = a.vDim;
  const size_t rowHead = (size_t)t * a.numHeads + head0;
  bf16* sQ = reinterpret_cast<bf16*>(smem + L.q);
  gridDepLaunchDependents();
  lrLoadBasis<D, Expand>(smem, L, a.kDim, lr);
  gridDepWait();

  int kBeg, kEnd;
  splitKeyRange(a, t, sp, splits, chunk, tid, err, &kBeg, &kEnd, lr.op);
  if (kBeg >= kEnd) {  // an empty split (or a bad row): contributes nothing
    for (int e = tid; e < HC * vDim; e += kLrThreads) {
      const int h = e / vDim, d = e % vDim;
      if (splits == 1) {
        static_cast<bf16*>(a.out)[(rowHead + h) * vDim + d] = fromF<bf16>(0.f);
      } else {
        partO[((rowHead + h) * splits + sp) * vDim + d] = 0.f;
        if (d == 0) partLse[(rowHead + h) * splits + sp] = -INFINITY;
      }
    }
    if (splits > 1)
      mergeIfLastSplit(counters, static_cast<bf16*>(a.out), partO, partLse, splits, HC, vDim,
                       rowHead, reinterpret_cast<float*>(smem));
    return;
  }
  const LrTiles<D, KT, Expand> T{a, lr, L, smem, a.seqOfToken[t], g, kEnd, err};

  // Q: HC rows of the group (8 with zero rows), held as B fragments for the whole kernel.
  const bf16* q = static_cast<const bf16*>(a.q) + rowHead * D;
  for (int c = tid; c < 8 * (D / 8); c += kLrThreads) {
    const int r = c / (D / 8), ch = c % (D / 8);
    cpAsync16(sQ + r * L.ldq + ch * 8, r < HC ? q + (size_t)r * D + ch * 8 : q, r < HC);
  }
  cpAsyncCommit();
  T.lookup(kBeg, 0);
  cpAsyncWait<0>();
  __syncthreads();
  uint32_t qb[D / 16][2];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk += 2) {
    uint32_t r4[4];
    ldmatrixX4(r4, sQ + ri * L.ldq + (2 * kk + mi) * 8);
    qb[kk][0] = r4[0], qb[kk][1] = r4[1], qb[kk + 1][0] = r4[2], qb[kk + 1][1] = r4[3];
  }
  T.issue(kBeg, 0, 0);

  // Oᵀ: rows = value dims (16·dv + r0, +8), columns = heads (2·t4, 2·t4 + 1).
  float oT[D / 16][4];
#pragma unroll
  for (int i = 0; i < D / 16; ++i) oT[i][0] = oT[i][1] = oT[i][2] = oT[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int vSteps = L.vPad / 16;
  const int nTiles = (kEnd - kBeg + BN - 1) / BN;

  for (int n = 0; n < nTiles; ++n) {
    const int kStart = kBeg + n * BN, st = stages == 2 ? n & 1 : 0, kw = 16 * warp;
    const bool more = n + 1 < nTiles;
    if (more) T.lookup(kStart + BN, (n + 1) & 1);
    T.warpBase(kStart + kw);
    cpAsyncWait<0>();
    __syncthreads();
    if (more && stages == 2) T.issue(kStart + BN, (n + 1) & 1, st ^ 1);

    // Sᵀ[16 keys × 8 heads] = K · Qᵀ for this warp's keys kw .. kw + 15.
    float sT[4] = {0.f, 0.f, 0.f, 0.f};
    const bf16* cT = T.stageC(st) + kw * L.ldc;
    if constexpr (Expand) {
      expandRotate16<D>(cT, L.ldc, L.kc, T.basis(), L.ldu, T.base(warp), T.rot(), L.ldr,
                        [&](int nc, float (&acc)[8][4]) {
#pragma unroll
                          for (int p = 0; p < 4; ++p) {
                            const uint32_t af[4] = {packBf16(acc[2 * p][0], acc[2 * p][1]),
                                                    packBf16(acc[2 * p][2], acc[2 * p][3]),
                                                    packBf16(acc[2 * p + 1][0], acc[2 * p + 1][1]),
                                                    packBf16(acc[2 * p + 1][2], acc[2 * p + 1][3])};
                            const int kk = (p < 2 ? nc : H2 + nc) / 16 + (p & 1);
                            mmaBf16(sT, af, qb[kk][0], qb[kk][1]);
                          }
                        });
    } else {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t af[4];
        ldmatrixX4(af, cT + ((mi & 1) * 8 + ri) * L.ldc + (2 * kk + (mi >> 1)) * 8);
        mmaBf16(sT, af, qb[kk][0], qb[kk][1]);
      }
    }

    // Online softmax per head (column), log2 domain; each thread keeps a partial sum.
    float corr[2];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = kStart + kw + r0 + (e >= 2 ? 8 : 0);
      sT[e] = key < kEnd ? capScore(sT[e], a.scale, a.softcap) * kLog2e : -INFINITY;
    }
#pragma unroll
    for (int hc = 0; hc < 2; ++hc) {
      float mx = fmaxf(sT[hc], sT[2 + hc]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
      const float mNew = fmaxf(m[hc], mx);
      corr[hc] = mNew == -INFINITY ? 1.f : exp2f(m[hc] - mNew);
      const float sub = mNew == -INFINITY ? 0.f : mNew;
      sT[hc] = exp2f(sT[hc] - sub);
      sT[2 + hc] = exp2f(sT[2 + hc] - sub);
      l[hc] = l[hc] * corr[hc] + sT[hc] + sT[2 + hc];
      m[hc] = mNew;
    }
    if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) {
#pragma unroll
      for (int dv = 0; dv < D / 16; ++dv)
        oT[dv][0] *= corr[0], oT[dv][1] *= corr[1], oT[dv][2] *= corr[0], oT[dv][3] *= corr[1];
    }

    // Oᵀ += Vᵀ · Pᵀ: Pᵀ's B fragments are the transposes of the score tiles.
    const uint32_t pb0 = movTrans(packBf16(sT[0], sT[1])), pb1 = movTrans(packBf16(sT[2], sT[3]));
    const bf16* vT = T.stageV(st) + kw * L.ldv;
#pragma unroll
    for (int dv = 0; dv < D / 16; ++dv) {
      if (dv < vSteps) {
        uint32_t av[4];
        ldmatrixX4Trans(av, vT + ((mi >> 1) * 8 + ri) * L.ldv + (2 * dv + (mi & 1)) * 8);
        mmaBf16(oT[dv], av, pb0, pb1);
      }
    }
    __syncthreads();  // the next copies overwrite this stage
    if (more && stages == 1) T.issue(kStart + BN, (n + 1) & 1, 0);
  }

  // Merge the 4 warps' states: O as [warp][8 heads][vPad] floats, then (m, l) [warp][8][2].
  float* sO = reinterpret_cast<float*>(smem + L.stage);
  float* sML = sO + 4 * 8 * L.vPad;
#pragma unroll
  for (int hc = 0; hc < 2; ++hc) {
    float sum = l[hc];
    sum += __shfl_xor_sync(0xffffffffu, sum, 4);
    sum += __shfl_xor_sync(0xffffffffu, sum, 8);
    sum += __shfl_xor_sync(0xffffffffu, sum, 16);
    if (r0 == 0) {
      sML[(warp * 8 + 2 * t4 + hc) * 2] = m[hc];
      sML[(warp * 8 + 2 * t4 + hc) * 2 + 1] = sum;
    }
  }
#pragma unroll
  for (int dv = 0; dv < D / 16; ++dv) {
    if (dv < vSteps) {
      float* o0 = sO + (warp * 8 + 2 * t4) * L.vPad + 16 * dv + r0;
      o0[0] = oT[dv][0], o0[L.vPad] = oT[dv][1], o0[8] = oT[dv][2], o0[L.vPad + 8] = oT[dv][3];
    }
  }
  __syncthreads();
  for (int e = tid; e < HC * vDim; e += kLrThreads) {
    const int h = e / vDim, d = e % vDim;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < 4; ++w) M = fmaxf(M, sML[(w * 8 + h) * 2]);
    float Lsum = 0.f, acc = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float mw = sML[(w * 8 + h) * 2];
        const float f = mw == -INFINITY ? 0.f : exp2f(mw - M);
        Lsum += f * sML[(w * 8 + h) * 2 + 1];
        acc += f * sO[(w * 8 + h) * L.vPad + d];
      }
    }
    const float val = Lsum > 0.f ? acc / Lsum : 0.f;
    if (splits == 1) {
      static_cast<bf16*>(a.out)[(rowHead + h) * vDim + d] = fromF<bf16>(val);
    } else {
      partO[((rowHead + h) * splits + sp) * vDim + d] = val;
      if (d == 0) partLse[(rowHead + h) * splits + sp] = Lsum > 0.f ? M * kLn2 + logf(Lsum) : -INFINITY;
    }
  }
  if (splits > 1)
    mergeIfLastSplit(counters, static_cast<bf16*>(a.out), partO, partLse, splits, HC, vDim,
                     rowHead, reinterpret_cast<float*>(smem));
}

template <int D, typename KT, bool Expand>
__global__ void __launch_bounds__(kLrThreads)
    lowRankPrefillKernel(AttnArgs a, LowRankArgs lr, int HC, int R, int splits, int chunk,
                         int stages, float* partO, float* partLse, DeviceError* err) {
  constexpr int BN = kLrTileKeys, BM = 64, H2 = D / 2;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ int sPos[BM];
  const LrSmem L(D, true, Expand, a.kDim, a.vDim, stages);
  gridDepLaunchDependents();
  lrLoadBasis<D, Expand>(smem, L, a.kDim, lr);
  gridDepWait();

  int s = -1, tile = 0;  // the (sequence, row tile) this block owns
  if (!prefillTileOf(a, R, blockIdx.x, &s, &tile)) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int mi = lane / 8, ri = lane % 8, t4 = lane % 4, r0 = lane / 4;
  const int G = a.numHeads / a.numKvHeads, head0 = blockIdx.y * HC, g = head0 / G, sp = blockIdx.z;
  const int rowBeg = tile * R, rows = min(R, a.numNew[s] - rowBeg), vDim = a.vDim;
  const int pFirst = a.pastLen[s] + rowBeg, pLast = pFirst + rows - 1;
  const int tok0 = a.tokenStart[s] + rowBeg;
  const int kLo = keyLo(pFirst, a.window), loLast = keyLo(pLast, a.window);
  const long long begLL = (long long)kLo + (long long)sp * chunk;
  const int kBeg = int(min(begLL, (long long)pLast + 1));
  const int kEnd = int(min((long long)pLast + 1, begLL + chunk));
  if (sp == splits - 1 && tid == 0 && (long long)kLo + (long long)splits * chunk <= pLast)
    reportError(err, kErrBeyondTable, lr.op, s, pLast);
  if (tid < BM) sPos[tid] = (tid < R * HC && tid / HC < rows) ? pFirst + tid / HC : -1;
  __syncthreads();

  if (kBeg >= kEnd) {  // a split past every row's keys: contributes nothing
    for (int e = tid; e < BM * vDim; e += kLrThreads) {
      const int vq = e / vDim, d = e % vDim;
      if (sPos[vq] < 0) continue;
      const size_t rh = (size_t)(tok0 + vq / HC) * a.numHeads + head0 + vq % HC;
      if (splits == 1) {
        static_cast<bf16*>(a.out)[rh * vDim + d] = fromF<bf16>(0.f);
      } else {
        partO[(rh * splits + sp) * vDim + d] = 0.f;
        if (d == 0) partLse[rh * splits + sp] = -INFINITY;
      }
    }
    return;
  }
  const LrTiles<D, KT, Expand> T{a, lr, L, smem, s, g, kEnd, err};

  // Q: vector i = (row i / HC, head i % HC); vectors past the rows are zeros.
  bf16* sQ = reinterpret_cast<bf16*>(smem + L.q);
  const bf16* q = static_cast<const bf16*>(a.q);
  for (int c = tid; c < BM * (D / 8); c += kLrThreads) {
    const int i = c / (D / 8), ch = c % (D / 8);
    const bool ok = sPos[i] >= 0;
    const bf16* src = ok ? q + ((size_t)(tok0 + i / HC) * a.numHeads + head0 + i % HC) * D + ch * 8 : q;
    cpAsync16(sQ + i * L.ldq + ch * 8, src, ok);
  }
  cpAsyncCommit();
  T.lookup(kBeg, 0);
  __syncthreads();
  T.issue(kBeg, 0, 0);

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float qkScale = a.scale * kLog2e;
  const bool capped = a.softcap > 0.f;
  const float capIn = capped ? a.scale / a.softcap : 0.f, capOut = a.softcap * kLog2e;
  const int vSteps = L.vPad / 16;
  const int nTiles = (kEnd - kBeg + BN - 1) / BN;
  bf16* sK = reinterpret_cast<bf16*>(smem + L.k);

  for (int n = 0; n < nTiles; ++n) {
    const int kStart = kBeg + n * BN, st = stages == 2 ? n & 1 : 0;
    const bool more = n + 1 < nTiles;
    if (more) T.lookup(kStart + BN, (n + 1) & 1);
    T.warpBase(kStart + 16 * warp);
    cpAsyncWait<0>();
    __syncthreads();
    if (more && stages == 2) T.issue(kStart + BN, (n + 1) & 1, st ^ 1);

    const bf16* kT = T.stageC(st);
    int ldk = L.ldc;
    if constexpr (Expand) {
      // Each warp expands 16 keys of the tile into sK (bf16) for every warp to read.
      expandRotate16<D>(T.stageC(st) + 16 * warp * L.ldc, L.ldc, L.kc, T.basis(), L.ldu,
                        T.base(warp), T.rot(), L.ldr, [&](int nc, float (&acc)[8][4]) {
#pragma unroll
                          for (int j = 0; j < 4; ++j)
#pragma unroll
                            for (int h = 0; h < 2; ++h) {
                              bf16* row = sK + (16 * warp + r0 + 8 * h) * L.ldk + nc + 8 * j + 2 * t4;
                              *reinterpret_cast<uint32_t*>(row) = packBf16(acc[j][2 * h], acc[j][2 * h + 1]);
                              *reinterpret_cast<uint32_t*>(row + H2) =
                                  packBf16(acc[4 + j][2 * h], acc[4 + j][2 * h + 1]);
                            }
                        });
      __syncthreads();
      kT = sK;
      ldk = L.ldk;
    }

    // S = Q · Kᵀ: the warp's 16 vectors × the tile's 64 keys.
    float sc[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4];
      ldmatrixX4(qa, sQ + (16 * warp + (mi & 1) * 8 + ri) * L.ldq + (2 * kk + (mi >> 1)) * 8);
#pragma unroll
      for (int nb = 0; nb < BN / 16; ++nb) {
        uint32_t kb[4];
        ldmatrixX4(kb, kT + (nb * 16 + (mi >> 1) * 8 + ri) * ldk + (2 * kk + (mi & 1)) * 8);
        mmaBf16(sc[2 * nb], qa, kb[0], kb[1]);
        mmaBf16(sc[2 * nb + 1], qa, kb[2], kb[3]);
      }
    }

    // Scores (log2 domain), masked on tiles that cross a row's window, the diagonal or the
    // split's end; online softmax of this thread's two vectors.
    const bool mask = kStart + BN - 1 > pFirst || kStart < loLast || kStart + BN > kEnd;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        sc[i][e] = capped ? capOut * tanhf(sc[i][e] * capIn) : sc[i][e] * qkScale;
    if (mask) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int p = sPos[16 * warp + r0 + 8 * h];
        const int lo = p < 0 ? INT_MAX : keyLo(p, a.window), hi = min(p, kEnd - 1);
#pragma unroll
        for (int i = 0; i < BN / 8; ++i)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int key = kStart + i * 8 + t4 * 2 + e;
            if (key < lo || key > hi) sc[i][2 * h + e] = -INFINITY;
          }
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
      const float sub = mNew == -INFINITY ? 0.f : mNew;
      const float c = exp2f(m[h] - sub);  // 0 on the first visible tile
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) {
        sc[i][2 * h] = exp2f(sc[i][2 * h] - sub);
        sc[i][2 * h + 1] = exp2f(sc[i][2 * h + 1] - sub);
        sum += sc[i][2 * h] + sc[i][2 * h + 1];
      }
      l[h] = l[h] * c + sum;
      m[h] = mNew;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) o[i][2 * h] *= c, o[i][2 * h + 1] *= c;
    }

    // O += P · V.
    const bf16* vT = T.stageV(st);
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      const uint32_t pa[4] = {packBf16(sc[2 * j][0], sc[2 * j][1]), packBf16(sc[2 * j][2], sc[2 * j][3]),
                              packBf16(sc[2 * j + 1][0], sc[2 * j + 1][1]),
                              packBf16(sc[2 * j + 1][2], sc[2 * j + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        if (dp < vSteps) {
          uint32_t vb[4];
          ldmatrixX4Trans(vb, vT + (16 * j + (mi & 1) * 8 + ri) * L.ldv + (2 * dp + (mi >> 1)) * 8);
          mmaBf16(o[2 * dp], pa, vb[0], vb[1]);
          mmaBf16(o[2 * dp + 1], pa, vb[2], vb[3]);
        }
      }
    }
    __syncthreads();  // the next copies and expansion overwrite what was read
    if (more && stages == 1) T.issue(kStart + BN, (n + 1) & 1, 0);
  }

  // Normalise and store (or the split's partial result and log-sum-exp).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int vq = 16 * warp + r0 + 8 * h;
    if (sPos[vq] < 0) continue;  // padding vector
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const size_t rh = (size_t)(tok0 + vq / HC) * a.numHeads + head0 + vq % HC;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const int col = 8 * i + 2 * t4;
      if (col >= vDim) continue;
      if (splits == 1) {
        *reinterpret_cast<__nv_bfloat162*>(static_cast<bf16*>(a.out) + rh * vDim + col) =
            __floats2bfloat162_rn(o[i][2 * h] * inv, o[i][2 * h + 1] * inv);
      } else {
        float* dst = partO + (rh * splits + sp) * vDim + col;
        dst[0] = o[i][2 * h] * inv;
        dst[1] = o[i][2 * h + 1] * inv;
      }
    }
    if (splits > 1 && t4 == 0)
      partLse[rh * splits + sp] = sum > 0.f ? m[h] * kLn2 + logf(sum) : -INFINITY;
  }
}

// The host side of one head dim: occupancy and launch of the kernel a plan names.
template <int D, typename KT, bool Expand>
const void* lowRankKernel(bool prefill) {
  return prefill ? reinterpret_cast<const void*>(&lowRankPrefillKernel<D, KT, Expand>)
                 : reinterpret_cast<const void*>(&lowRankDecodeKernel<D, KT, Expand>);
}

template <int D>
const void* lowRankKernelOf(const AttnArgs& a, const LowRankPlan& p) {
  const bool f32 = a.kvType == DType::F32;
  if (p.expand) return f32 ? lowRankKernel<D, float, true>(p.prefill) : lowRankKernel<D, bf16, true>(p.prefill);
  return f32 ? lowRankKernel<D, float, false>(p.prefill) : lowRankKernel<D, bf16, false>(p.prefill);
}

template <int D>
int lowRankBlocksPerSMFor(const AttnArgs& a, const LowRankPlan& p) {
  const void* k = lowRankKernelOf<D>(a, p);
  check(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.smem)),
        p.opName);
  int n = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k, kLrThreads, p.smem), p.opName);
  return n < 1 ? 1 : n;
}

template <typename KT, bool Expand, int D>
void launchLowRankAs(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p) {
  if (p.prefill) {
    const dim3 grid(p.gridX, unsigned(a.numHeads / p.HC), unsigned(p.splits));
    launchKernel(c, p.opName, lowRankPrefillKernel<D, KT, Expand>, grid, kLrThreads, p.smem, a,
                 lr, p.HC, p.R, p.splits, p.chunk, p.stages, p.partO, p.partLse, c.err);
  } else {
    const dim3 grid(unsigned(p.splits), unsigned(a.numHeads / p.HC), unsigned(a.numTokens));
    launchKernel(c, p.opName, lowRankDecodeKernel<D, KT, Expand>, grid, kLrThreads, p.smem, a,
                 lr, p.HC, p.splits, p.chunk, p.stages, p.partO, p.partLse, p.counters, c.err);
  }
}

template <int D>
void launchLowRankFor(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p) {
  check(cudaFuncSetAttribute(lowRankKernelOf<D>(a, p), cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(p.smem)), p.opName);
  const bool f32 = a.kvType == DType::F32;
  if (p.expand) {
    if (f32) launchLowRankAs<float, true, D>(c, a, lr, p);
    else launchLowRankAs<bf16, true, D>(c, a, lr, p);
  } else {
    if (f32) launchLowRankAs<float, false, D>(c, a, lr, p);
    else launchLowRankAs<bf16, false, D>(c, a, lr, p);
  }
}

}  // namespace cuda
}  // namespace mixattn
