// Sampling reductions on the device. argmax: one block per row of fp32 logits; each thread
// keeps the best (value, index) of a strided slice (16-byte loads where the row allows), then
// warp shuffles and one shared-memory round pick the block's best. Ties go to the lowest index
// and NaN never wins, like the CPU twin (so greedy token ids agree exactly).
#include <climits>
#include <cmath>

#include "cuda/common.cuh"

namespace mixattn {
namespace cuda {

namespace {

constexpr int kArgmaxThreads = 512;

// (v, i) replaces (bv, bi) when larger, or equal and earlier; -inf and NaN never enter.
__device__ __forceinline__ void better(float& bv, int& bi, float v, int i) {
  if (v > bv || (v == bv && i < bi && v > -INFINITY)) bv = v, bi = i;
}

__global__ void __launch_bounds__(kArgmaxThreads) argmaxKernel(int32_t* out, const float* logits,
                                                               int vocab) {
  const float* x = logits + (size_t)blockIdx.x * vocab;
  float bv = -INFINITY;
  int bi = INT_MAX;
  // 16-byte loads when the row starts 16-byte aligned (vocab % 4 == 0), then the tail.
  const int nv = (reinterpret_cast<uintptr_t>(x) % 16 == 0) ? vocab / 4 : 0;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  for (int j = threadIdx.x; j < nv; j += blockDim.x) {
    const float4 v = x4[j];
    better(bv, bi, v.x, 4 * j);
    better(bv, bi, v.y, 4 * j + 1);
    better(bv, bi, v.z, 4 * j + 2);
    better(bv, bi, v.w, 4 * j + 3);
  }
  for (int i = 4 * nv + threadIdx.x; i < vocab; i += blockDim.x) better(bv, bi, x[i], i);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, bv, o);
    const int i = __shfl_xor_sync(0xffffffffu, bi, o);
    better(bv, bi, v, i);
  }
  __shared__ float sv[kArgmaxThreads / 32];
  __shared__ int si[kArgmaxThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = bv, si[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    bv = lane < kArgmaxThreads / 32 ? sv[lane] : -INFINITY;
    bi = lane < kArgmaxThreads / 32 ? si[lane] : INT_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, bv, o);
      const int i = __shfl_xor_sync(0xffffffffu, bi, o);
      better(bv, bi, v, i);
    }
    if (lane == 0) out[blockIdx.x] = bi == INT_MAX ? 0 : bi;
  }
}

}  // namespace

void argmax(const Ctx& c, int32_t* out, const float* logits, int rows, int vocab) {
  argmaxKernel<<<rows, kArgmaxThreads, 0, c.stream>>>(out, logits, vocab);
  checkLaunch("argmax");
}

}  // namespace cuda
}  // namespace mixattn
