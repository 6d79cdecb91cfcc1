// Split-KV merge: out(row, head) = Σ_i w_i·o_i / Σ_i w_i with w_i = exp(lse_i − max lse) over
// the splits' partial results (partO [rows·heads][splits][width], partLse [rows·heads][splits]).
//
// Two callers, one arithmetic (mergeSplits), so they give the same bits: attn_decode.cu's
// combine kernel (a launch of its own), and the decode kernels themselves, where the last
// block of a (row, head group) to finish merges every split (lastSplitArrived): one launch per
// layer less. The arrival counters (Ctx::splitCounters, one per (row, group), zeroed when the
// backend is created) are reset to zero by that last block, so the next launch, or the next
// replay of a graph holding this one, finds them zero. Launches on one stream never overlap
// (each kernel waits for its predecessor before touching memory, launch.cuh), so a counter
// serves one launch at a time.
#pragma once

#include <cmath>

#include "cuda/common.cuh"

namespace mixattn {
namespace cuda {

// After the block wrote its partials (every thread calls it): true in the block whose
// arrival at `counter` is the splits-th, which then sees every split's partials. It resets the
// counter. `flag`: one int of shared memory.
__device__ __forceinline__ bool lastSplitArrived(unsigned* counter, int splits, int* flag) {
  __threadfence();  // this block's partials are visible device-wide before it is counted
  __syncthreads();
  if (threadIdx.x == 0) {
    const bool last = atomicAdd(counter, 1u) == unsigned(splits - 1);
    if (last) atomicExch(counter, 0u);  // every split has arrived: ready for the next launch
    *flag = last;
  }
  __syncthreads();
  const bool last = *flag != 0;
  if (last) __threadfence();  // the others' partials are read after their arrivals
  return last;
}

// Merges heads [rowHead, rowHead + nh) with the block's threads; sMem: nh·(splits + 2) floats
// of shared memory. Partials are read through L2 (__ldcg): the L1 of this SM may hold lines of
// the same scratch from an earlier launch. The splits' weights exp(lse − max) are computed
// once per (head, split), and the partials are read kBatch splits at a time (independent loads
// in flight): read one after another, 32 splits cost 32 L2 round trips (~15 µs of a batch-1
// 4k-context decode launch). The sum keeps the split order.
// Out of line: the decode kernels are short-lived and fetch their code cold, so one shared
// copy of this (rarely run: the last block only) beats one per call site.
static __device__ __noinline__ void mergeSplits(bf16* out, const float* partO, const float* partLse,
                                            int splits, int nh, int width, size_t rowHead,
                                            float* sMem) {
  constexpr int kBatch = 16;
  float* sW = sMem;                  // [nh][splits]: lse, then the weights
  float* sMax = sW + nh * splits;    // [nh]
  float* sSum = sMax + nh;           // [nh]
  for (int e = threadIdx.x; e < nh * splits; e += blockDim.x)
    sW[e] = __ldcg(partLse + rowHead * splits + e);
  __syncthreads();
  for (int h = threadIdx.x; h < nh; h += blockDim.x) {
    const float* lse = sW + h * splits;
    float mx = -INFINITY, wsum = 0.f;
    for (int i = 0; i < splits; ++i) mx = fmaxf(mx, lse[i]);
    if (mx != -INFINITY)
      for (int i = 0; i < splits; ++i) wsum += expf(lse[i] - mx);
    sMax[h] = mx;
    sSum[h] = wsum;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < nh * splits; e += blockDim.x) {
    const float mx = sMax[e / splits];
    sW[e] = mx == -INFINITY ? 0.f : expf(sW[e] - mx);
  }
  __syncthreads();
  // Each thread's outputs kE at a time, each batch of kBatch splits loaded for all of them
  // before the FMAs (a batch past the last split loads nothing and adds nothing), so 34 splits
  // of 2 outputs are 3 rounds of loads rather than 8 (two batches and two single loads for each
  // output in turn): the merge is the tail of every batch-1 decode launch.
  constexpr int kE = 2;
  const int total = nh * width;
  for (int e0 = threadIdx.x; e0 < total; e0 += kE * blockDim.x) {
    const float* o[kE];
    const float* w[kE];
    float acc[kE];
#pragma unroll
    for (int j = 0; j < kE; ++j) {
      const int e = min(e0 + j * int(blockDim.x), total - 1), h = e / width, d = e - h * width;
      o[j] = partO + (rowHead + h) * splits * width + d;
      w[j] = sW + h * splits;
      acc[j] = 0.f;
    }
    for (int i = 0; i < splits; i += kBatch) {
      float v[kE][kBatch];
#pragma unroll
      for (int j = 0; j < kE; ++j)
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          v[j][b] = i + b < splits ? __ldcg(o[j] + size_t(i + b) * width) : 0.f;
#pragma unroll
      for (int j = 0; j < kE; ++j)
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          if (i + b < splits) acc[j] = fmaf(w[j][i + b], v[j][b], acc[j]);
    }
#pragma unroll
    for (int j = 0; j < kE; ++j) {
      const int e = e0 + j * int(blockDim.x);
      if (e >= total) break;
      const int h = e / width, d = e - h * width;
      const float wsum = sSum[h];
      out[(rowHead + h) * width + d] = fromF<bf16>(wsum > 0.f ? acc[j] / wsum : 0.f);
    }
  }
}

// Shared memory mergeSplits needs.
constexpr size_t mergeSmemBytes(int nh, int splits) {
  return size_t(nh) * (size_t(splits) + 2) * sizeof(float);
}

// The end of a split-KV decode block (grid: x splits, y head groups, z rows) that wrote its
// partials of heads [rowHead, rowHead + nh): with counters, the last split of its (row, group)
// merges them all into out. sMem: the kernel's dynamic shared memory, free by then (at least
// mergeSmemBytes(nh, splits), the host's check).
__device__ __forceinline__ void mergeIfLastSplit(unsigned* counters, bf16* out, const float* partO,
                                                 const float* partLse, int splits, int nh,
                                                 int width, size_t rowHead, float* sMem) {
  __shared__ int flag;
  if (!counters) return;
  unsigned* counter = counters + size_t(blockIdx.z) * gridDim.y + blockIdx.y;
  if (lastSplitArrived(counter, splits, &flag))
    mergeSplits(out, partO, partLse, splits, nh, width, rowHead, sMem);
}

}  // namespace cuda
}  // namespace mixattn
