// Device-side helpers shared by the kernels: bf16/f32 element access, error reporting and the
// paged-KV page lookup (and launch.cuh's PDL launch, which every kernel follows).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_error.h"
#include "cuda/launch.cuh"
#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float toF(float x) { return x; }
__device__ __forceinline__ float toF(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T fromF(float x);
template <>
__device__ __forceinline__ float fromF<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 fromF<bf16>(float x) { return __float2bfloat16_rn(x); }

// The gated MLP's activation (Activation as an int template argument), fp32.
template <int kAct>
__device__ __forceinline__ float gatedAct(float g) {
  if (kAct == int(Activation::SiLU)) return g / (1.f + expf(-g));
  const float c = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * g * (1.f + tanhf(c * (g + 0.044715f * g * g * g)));
}

// First error wins; the winner alone writes the details (read only after a sync). Out of line:
// the kernels call it from many unrolled sites on paths that never run in a good step, and
// inlined copies cost instruction-cache space in their hot loops.
static __device__ __noinline__ void reportError(DeviceError* e, int code, int op, int a, int b,
                                            int c = 0, int d = 0) {
  if (atomicCAS(&e->code, 0, code) == 0) {
    e->op = op;
    e->a = a;
    e->b = b;
    e->c = c;
    e->d = d;
  }
}

// The (sequence, row tile) of prefill block `item`, with tiles of R rows: the heaviest (last)
// tiles of each sequence get the lowest block ids so they start first. False past the last tile.
__device__ __forceinline__ bool prefillTileOf(const AttnArgs& a, int R, int item, int* s,
                                              int* tile) {
  for (int i = 0; i < a.numSeqs; ++i) {
    const int n = (a.numNew[i] + R - 1) / R;
    if (item < n) {
      *s = i;
      *tile = n - 1 - item;
      return true;
    }
    item -= n;
  }
  return false;
}

// Records why (sequence s, position pos) has no page: the checks of lookupPage, repeated out
// of line so that each inlined lookup carries one call, not five (the decode kernel's code was
// 187 KB, most of it argument set-up for these calls, and its short blocks stalled on
// instruction fetch: ncu's no_instruction was 57% of its cycles).
static __device__ __noinline__ void reportMissingPage(const int32_t* tables, int numSeqs,
                                                      int tableStride, int numPages, int blockSize,
                                                      int pagesPerBlock, int slot, int s, int pos,
                                                      DeviceError* err, int op) {
  if (s < 0 || s >= numSeqs) return reportError(err, kErrSeqRange, op, s, pos);
  if (pos < 0) return reportError(err, kErrNegativePos, op, s, pos);
  const long long entry = (long long)(pos / blockSize) * pagesPerBlock + slot;
  if (entry >= tableStride) return reportError(err, kErrBeyondTable, op, s, pos);
  const int page = tables[(long long)s * tableStride + entry];
  if (page < 0) return reportError(err, kErrPageMissing, op, s, pos, page);
  reportError(err, kErrPageRange, op, s, pos, page, numPages);
}

// The page of logical block blk of sequence s (a valid sequence, blk >= 0) for this layer, or
// -1 where the entry lies beyond the table or holds a bad page id. Records nothing: a plain
// table read, so that several can issue together; callers report through lookupPage.
__device__ __forceinline__ int tablePage(const AttnArgs& a, int s, int blk) {
  const long long entry = (long long)blk * a.pagesPerBlock + a.slot;
  if (entry < a.tableStride) {
    const int page = a.tables[(long long)s * a.tableStride + entry];
    if ((unsigned)page < (unsigned)a.numPages) return page;
  }
  return -1;
}

__device__ __forceinline__ void reportMissingPage(const AttnArgs& a, int s, int pos,
                                                  DeviceError* err, int op) {
  reportMissingPage(a.tables, a.numSeqs, a.tableStride, a.numPages, a.blockSize, a.pagesPerBlock,
                    a.slot, s, pos, err, op);
}

// The page holding (sequence s, position pos) for this layer, or -1 after recording why.
__device__ __forceinline__ int lookupPage(const AttnArgs& a, int s, int pos, DeviceError* err,
                                          int op) {
  // tablePage's read written out: through tablePage, ptxas gives the mma.sync prefill
  // configurations (the sm_80 default among them) 4–8 more registers.
  if (s >= 0 && s < a.numSeqs && pos >= 0) {
    const int blk = a.bsShift >= 0 ? pos >> a.bsShift : pos / a.blockSize;
    const long long entry = (long long)blk * a.pagesPerBlock + a.slot;
    if (entry < a.tableStride) {
      const int page = a.tables[(long long)s * a.tableStride + entry];
      if ((unsigned)page < (unsigned)a.numPages) return page;
    }
  }
  reportMissingPage(a, s, pos, err, op);
  return -1;
}

// lookupPage for a hot loop that knows s is a valid sequence, pos >= 0 and the block size a
// power of two (a.bsShift >= 0): no sequence or position checks, a shift for the block.
// (Inline: a call would make every kernel that uses it save registers around it.)
__device__ __forceinline__ int lookupPagePow2(const AttnArgs& a, int s, int pos, DeviceError* err,
                                              int op) {
  const int page = tablePage(a, s, pos >> a.bsShift);
  if (page >= 0) return page;
  reportMissingPage(a, s, pos, err, op);
  return -1;
}

// Position of `pos` inside its block (shift/mask for power-of-two block sizes: a runtime
// division costs ~20 instructions, and the attention loads do it for every row they fetch).
__device__ __forceinline__ int blockOffset(const AttnArgs& a, int pos) {
  return a.bsShift >= 0 ? pos & ((1 << a.bsShift) - 1) : pos % a.blockSize;
}

// Byte offsets inside a page: K as [head][blockSize][kDim], then V as [head][blockSize][vDim].
__device__ __forceinline__ size_t kOffset(const AttnArgs& a, int head, int off, size_t es) {
  return ((size_t)head * a.blockSize + off) * a.kDim * es;
}
__device__ __forceinline__ size_t vOffset(const AttnArgs& a, int head, int off, size_t es) {
  return (size_t)a.numKvHeads * a.blockSize * a.kDim * es +
         ((size_t)head * a.blockSize + off) * a.vDim * es;
}

// First key position row p attends to.
__device__ __forceinline__ int keyLo(int p, int window) {
  return window > 0 ? max(0, p - window + 1) : 0;
}

// The keys split `sp` of `splits` (each `chunk` keys) of decode row t covers: [*kBeg, *kEnd),
// empty for a bad row (reported once, by split 0) or a split past the row's keys. A row whose
// keys reach beyond splits × chunk (the table's width) is reported by the last split.
__device__ __forceinline__ void splitKeyRange(const AttnArgs& a, int t, int sp, int splits,
                                              int chunk, int tid, DeviceError* err, int* kBeg,
                                              int* kEnd, int op = kOpAttention) {
  const int s = a.seqOfToken[t], p = a.positions[t];
  *kBeg = *kEnd = 0;
  if (s < 0 || s >= a.numSeqs || p < 0) {
    if (tid == 0 && sp == 0)
      reportError(err, s < 0 || s >= a.numSeqs ? kErrSeqRange : kErrNegativePos, op, s, p);
    return;
  }
  const int lo = keyLo(p, a.window);
  *kBeg = lo + sp * chunk;
  *kEnd = min(p + 1, lo + (sp + 1) * chunk);
  if (sp == splits - 1 && tid == 0 && (long long)lo + (long long)splits * chunk <= p)
    reportError(err, kErrBeyondTable, op, s, p);
}

__device__ __forceinline__ float warpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Scores: scale, then cap·tanh(x/cap) when a soft-cap is set.
__device__ __forceinline__ float capScore(float x, float scale, float softcap) {
  x *= scale;
  return softcap > 0.f ? softcap * tanhf(x / softcap) : x;
}

inline unsigned ceilDiv(size_t a, size_t b) { return unsigned((a + b - 1) / b); }

}  // namespace cuda
}  // namespace mixattn
