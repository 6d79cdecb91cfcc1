// Skinny GEMM for decode steps: D[M, N] = X[M, K] · W[N, K]ᵀ (+ bias) with M <= kGemvMaxRows,
// bf16 X and W, fp32 accumulation, bf16 or fp32 D.
//
// Why not cuBLASLt here: at M = 1..8 the step is a pure weight read (2 bytes per weight, 2·M
// FLOPs), and the tiles cuBLASLt's heuristic picks for such shapes leave most SMs idle
// (N = 2048 with 128-wide tiles is 16 CTAs on 132 SMs). One warp per output column, reading
// its weight row with 16-byte loads, keeps every SM streaming. X (at most 8 × K bf16) is
// re-read from L1/L2 by every warp, which costs no DRAM traffic.
#include "cuda/common.cuh"
#include "cuda/gemv.h"

namespace mixattn {
namespace cuda {

namespace {

constexpr int kWarpsPerBlock = 8;
// 16-byte loads in flight per lane before the FMAs (memory-level parallelism).
constexpr int kUnroll = 4;

__device__ __forceinline__ void fma8(float& acc, const uint4& w, const uint4& x) {
  const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(&w);
  const __nv_bfloat162* x2 = reinterpret_cast<const __nv_bfloat162*>(&x);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = __bfloat1622float2(w2[i]);
    const float2 b = __bfloat1622float2(x2[i]);
    acc = fmaf(a.x, b.x, acc);
    acc = fmaf(a.y, b.y, acc);
  }
}

template <int M, typename OutT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemvKernel(OutT* __restrict__ d, const bf16* __restrict__ x, const bf16* __restrict__ w,
               const bf16* __restrict__ bias, int N, int K) {
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (n >= N) return;
  const int kv = K >> 3;  // 16-byte vectors per row (K % 8 == 0 is the caller's contract)
  const uint4* wRow = reinterpret_cast<const uint4*>(w + size_t(n) * K);
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;

  int i = lane;
  for (; i + 32 * (kUnroll - 1) < kv; i += 32 * kUnroll) {
    uint4 wr[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wr[u] = __ldg(wRow + i + 32 * u);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int m = 0; m < M; ++m) fma8(acc[m], wr[u], __ldg(xv + size_t(m) * kv + i + 32 * u));
  }
  for (; i < kv; i += 32) {
    const uint4 wr = __ldg(wRow + i);
#pragma unroll
    for (int m = 0; m < M; ++m) fma8(acc[m], wr, __ldg(xv + size_t(m) * kv + i));
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
  if (lane < M) {
    // Lane m writes row m (a register array cannot be indexed by lane without local memory).
    float v = 0.f;
#pragma unroll
    for (int m = 0; m < M; ++m)
      if (m == lane) v = acc[m];
    if (bias) v += __bfloat162float(bias[n]);
    d[size_t(lane) * N + n] = fromF<OutT>(v);
  }
}

template <typename OutT>
void launch(const Ctx& c, OutT* d, const bf16* x, const bf16* w, const bf16* bias, int M, int N,
            int K) {
  const dim3 grid((N + kWarpsPerBlock - 1) / kWarpsPerBlock), block(kWarpsPerBlock * 32);
  switch (M) {
#define MIXATTN_GEMV_CASE(m) \
  case m: gemvKernel<m, OutT><<<grid, block, 0, c.stream>>>(d, x, w, bias, N, K); break;
    MIXATTN_GEMV_CASE(1)
    MIXATTN_GEMV_CASE(2)
    MIXATTN_GEMV_CASE(3)
    MIXATTN_GEMV_CASE(4)
    MIXATTN_GEMV_CASE(5)
    MIXATTN_GEMV_CASE(6)
    MIXATTN_GEMV_CASE(7)
    MIXATTN_GEMV_CASE(8)
#undef MIXATTN_GEMV_CASE
    default: throw Error("gemv: M must be 1.." + std::to_string(kGemvMaxRows));
  }
  checkLaunch("gemv");
}

}  // namespace

bool gemvApplies(const void* x, const void* w, int M, int K) {
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  return M >= 1 && M <= kGemvMaxRows && K % 8 == 0 && aligned(x) && aligned(w);
}

void gemv(const Ctx& c, void* d, bool dF32, const void* x, const void* w, const void* bias, int M,
          int N, int K) {
  const bf16* xb = static_cast<const bf16*>(x);
  const bf16* wb = static_cast<const bf16*>(w);
  const bf16* bb = static_cast<const bf16*>(bias);
  if (dF32)
    launch(c, static_cast<float*>(d), xb, wb, bb, M, N, K);
  else
    launch(c, static_cast<bf16*>(d), xb, wb, bb, M, N, K);
}

}  // namespace cuda
}  // namespace mixattn
