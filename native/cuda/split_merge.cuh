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
// once per (head, split), and each output element reads its splits' partials kBatch at a time
// (independent loads in flight; 16: 34 splits at 1 × 4k were 5 round trips at 8): read one after another, 32 splits cost 32 L2 round trips
// (~15 µs of a batch-1 4k-context decode launch). The sum keeps the split order.
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
  for (int e = threadIdx.x; e < nh * width; e += blockDim.x) {
    const int h = e / width, d = e - h * width;
    const float* w = sW + h * splits;
    const float* o = partO + (rowHead + h) * splits * width + d;
    float acc = 0.f;
    int i = 0;
    for (; i + kBatch <= splits; i += kBatch) {
      float v[kBatch];
#pragma unroll
      for (int j = 0; j < kBatch; ++j) v[j] = __ldcg(o + size_t(i + j) * width);
#pragma unroll
      for (int j = 0; j < kBatch; ++j) acc = fmaf(w[i + j], v[j], acc);
    }
    for (; i < splits; ++i) acc = fmaf(w[i], __ldcg(o + size_t(i) * width), acc);
    const float wsum = sSum[h];
    out[(rowHead + h) * width + d] = fromF<bf16>(wsum > 0.f ? acc / wsum : 0.f);
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
