// Skinny GEMM for decode steps: D[M, N] = X[M, K] · W[N, K]ᵀ (+ bias) with M <= kGemvMaxRows,
// bf16 X and W, fp32 accumulation, bf16 or fp32 D.
//
// Why not cuBLASLt here: at M = 1..8 the step is a pure weight read (2 bytes per weight, 2·M
// FLOPs), and the tiles cuBLASLt's heuristic picks for such shapes leave most SMs idle
// (N = 2048 with 128-wide tiles is 16 CTAs on 132 SMs). One warp per output column, reading
// its weight row with 16-byte loads, keeps every SM streaming. X (at most 8 × K bf16) is
// re-read from L1/L2 by every warp, which costs no DRAM traffic.
#include <algorithm>
#include <cstdlib>
#include <string>

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

// A row's weights are split among `ks` warps (the block's rows·ks = kWarpsPerBlock warps):
// lane `lane` of part `part` reads the row's 16-byte vectors first, first + stride, ... with
// first = lane + 32·part and stride = 32·ks, and the parts' sums meet in shared memory. Why:
// with one warp per row, o_proj/down (N = 2048) put 16 warps with 2 KB in flight on an SM,
// too few bytes in flight to stream at the copy bandwidth (ncu: 1.4 TB/s).
//
// The lane's vectors of a weight row past its first round, prefetched into L2: issued before
// gridDepWait() for every row the warp will take (weights are constant across the step,
// launch.cuh), so the rows stream in while the kernel before this one finishes.
__device__ __forceinline__ void prefetchRow(const bf16* __restrict__ wRowPtr, int K, int first,
                                            int stride) {
  const uint4* wRow = reinterpret_cast<const uint4*>(wRowPtr);
  const int kv = K >> 3;
  for (int i = first + stride * kUnroll; i < kv; i += stride)
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(wRow + i));
}

// The lane's first round of a weight row (kUnroll vectors, zeros past the row) into registers.
__device__ __forceinline__ void rowHead(uint4 (&head)[kUnroll], const bf16* __restrict__ wRowPtr,
                                        int K, int first, int stride) {
  const uint4* wRow = reinterpret_cast<const uint4*>(wRowPtr);
  const int kv = K >> 3;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int i = first + stride * u;
    head[u] = i < kv ? __ldg(wRow + i) : make_uint4(0, 0, 0, 0);
  }
}

// acc[m] = x[m, :] · (this warp's part of wRow) (every lane ends with the part's sums); `head` is
// the lane's first round of weights from rowHead. Every round keeps kUnroll loads in flight
// (vectors past the row are predicated off), also for rows shorter than a round.
template <int M>
__device__ __forceinline__ void warpDot(float (&acc)[M], const uint4 (&head)[kUnroll],
                                        const bf16* __restrict__ wRowPtr,
                                        const bf16* __restrict__ x, int K, int first, int stride) {
  const int kv = K >> 3;  // 16-byte vectors per row (K % 8 == 0 is the caller's contract)
  const uint4* wRow = reinterpret_cast<const uint4*>(wRowPtr);
  const uint4* xv = reinterpret_cast<const uint4*>(x);
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  auto fmaRound = [&](const uint4 (&wr)[kUnroll], int base) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + stride * u;
      if (i < kv) {
#pragma unroll
        for (int m = 0; m < M; ++m) fma8(acc[m], wr[u], __ldg(xv + size_t(m) * kv + i));
      }
    }
  };
  fmaRound(head, first);
  for (int base = first + stride * kUnroll; base < kv; base += stride * kUnroll) {
    uint4 wr[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + stride * u;
      wr[u] = i < kv ? __ldg(wRow + i) : make_uint4(0, 0, 0, 0);
    }
    fmaRound(wr, base);
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
}

// acc[lane] without local memory (a register array cannot be indexed by a runtime value).
template <int M>
__device__ __forceinline__ float pick(const float (&acc)[M], int lane) {
  float v = 0.f;
#pragma unroll
  for (int m = 0; m < M; ++m)
    if (m == lane) v = acc[m];
  return v;
}

// Sum of the ks parts of row (warp / ks) for lane < M, valid in the part-0 warp: each warp's
// sums through shared memory (every thread of the block must call it: it has a barrier).
template <int M>
__device__ __forceinline__ float partSum(const float (&acc)[M], float (*red)[kGemvMaxRows],
                                         int ks, int warp, int lane) {
  float v = pick<M>(acc, lane);
  if (ks == 1) return v;
  if (lane < M) red[warp][lane] = v;
  __syncthreads();
  v = 0.f;
  if (lane < M && warp % ks == 0)
    for (int p = 0; p < ks; ++p) v += red[warp + p][lane];
  __syncthreads();  // read before a next row block's sums overwrite it
  return v;
}

// This warp's row within the block and its vectors (first, stride): rows·ks = kWarpsPerBlock.
struct WarpRole {
  int row, first, stride;
  __device__ explicit WarpRole(int ks) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    row = warp / ks;
    first = lane + 32 * (warp % ks);
    stride = 32 * ks;
  }
};

// Up to kGemvMaxJobs weights over one input, one launch: block b belongs to the job whose
// range of blocks holds it (the q, k and v projections of a layer).
constexpr int kGemvMaxJobs = 3;
struct GemvJobs {
  bf16* out[kGemvMaxJobs];
  const bf16* w[kGemvMaxJobs];
  const bf16* bias[kGemvMaxJobs];
  int N[kGemvMaxJobs];
  int firstBlock[kGemvMaxJobs + 1];
  int count;
};

// D[:, n] for row blocks rb0, rb0 + rbStep, ... of one weight (rows·ks = kWarpsPerBlock warps
// per row block): the body of both GEMV kernels. A grid of a few blocks per SM, each taking
// several row blocks, rather than one block per row block. Why: the kernel after a decode
// step's attention (or after another GEMV) starts early (PDL) only as far as its blocks fit
// beside the running kernel's; with ~1024 blocks three quarters started only after it ended,
// and then first read their weights from DRAM (the step's trace: o_proj 7 µs after attention).
// Now every block is resident early and has prefetched all of its rows before the wait.
template <int M, typename OutT>
__device__ __forceinline__ void gemvRows(OutT* __restrict__ d, const bf16* __restrict__ x,
                                         const bf16* __restrict__ w,
                                         const bf16* __restrict__ bias, int N, int K, int ks,
                                         int rb0, int rbStep) {
  __shared__ float red[kWarpsPerBlock][kGemvMaxRows];
  gridDepLaunchDependents();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const WarpRole role(ks);
  const int rowsPerBlock = kWarpsPerBlock / ks;
  for (int rb = rb0; rb * rowsPerBlock < N; rb += rbStep) {
    const int n = rb * rowsPerBlock + role.row;
    if (n < N) prefetchRow(w + size_t(n) * K, K, role.first, role.stride);
  }
  uint4 head[kUnroll];
  {
    const int n = rb0 * rowsPerBlock + role.row;
    if (n < N) rowHead(head, w + size_t(n) * K, K, role.first, role.stride);
  }
  gridDepWait();
  for (int rb = rb0; rb * rowsPerBlock < N; rb += rbStep) {  // uniform in the block (barriers)
    const int n = rb * rowsPerBlock + role.row;
    const bool active = n < N;
    if (active && rb != rb0) rowHead(head, w + size_t(n) * K, K, role.first, role.stride);
    float acc[M];
    if (active) {
      warpDot<M>(acc, head, w + size_t(n) * K, x, K, role.first, role.stride);
    } else {
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] = 0.f;
    }
    const float v = partSum<M>(acc, red, ks, warp, lane);
    if (active && lane < M && warp % ks == 0)
      d[size_t(lane) * N + n] = fromF<OutT>(bias ? v + __bfloat162float(bias[n]) : v);
  }
}

template <int M, typename OutT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemvKernel(OutT* __restrict__ d, const bf16* __restrict__ x, const bf16* __restrict__ w,
               const bf16* __restrict__ bias, int N, int K, int ks) {
  gemvRows<M, OutT>(d, x, w, bias, N, K, ks, blockIdx.x, gridDim.x);
}

template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemvJobsKernel(GemvJobs jobs, const bf16* __restrict__ x, int K, int ks) {
  // The job's fields picked by unrolled compares: a runtime index into the parameter arrays
  // would copy the struct to local memory.
  bf16* out = nullptr;
  const bf16* w = nullptr;
  const bf16* bias = nullptr;
  int N = 0, first = 0, next = 0;
#pragma unroll
  for (int j = 0; j < kGemvMaxJobs; ++j)
    if (j < jobs.count && int(blockIdx.x) >= jobs.firstBlock[j]) {
      out = jobs.out[j], w = jobs.w[j], bias = jobs.bias[j], N = jobs.N[j], first = jobs.firstBlock[j];
      next = jobs.firstBlock[j + 1];
    }
  gemvRows<M, bf16>(out, x, w, bias, N, K, ks, int(blockIdx.x) - first, next - first);
}

// out[m, n] = act(x[m] · wGate[n]) * (x[m] · wUp[n]), both dot products by the same warp, the
// activation on the fp32 sums (the unfused path rounds gate and up to bf16 first).
template <int M, int kAct>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gatedGemvKernel(bf16* __restrict__ out, const bf16* __restrict__ x,
                    const bf16* __restrict__ wGate, const bf16* __restrict__ wUp, int I, int K,
                    int ks) {
  __shared__ float red[2][kWarpsPerBlock][kGemvMaxRows];
  gridDepLaunchDependents();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const WarpRole role(ks);
  const int rowsPerBlock = kWarpsPerBlock / ks, rb0 = blockIdx.x, rbStep = gridDim.x;
  for (int rb = rb0; rb * rowsPerBlock < I; rb += rbStep) {  // as gemvRows
    const int n = rb * rowsPerBlock + role.row;
    if (n < I) {
      prefetchRow(wGate + size_t(n) * K, K, role.first, role.stride);
      prefetchRow(wUp + size_t(n) * K, K, role.first, role.stride);
    }
  }
  uint4 gHead[kUnroll], uHead[kUnroll];
  {
    const int n = rb0 * rowsPerBlock + role.row;
    if (n < I) {
      rowHead(gHead, wGate + size_t(n) * K, K, role.first, role.stride);
      rowHead(uHead, wUp + size_t(n) * K, K, role.first, role.stride);
    }
  }
  gridDepWait();
  for (int rb = rb0; rb * rowsPerBlock < I; rb += rbStep) {
    const int n = rb * rowsPerBlock + role.row;
    const bool active = n < I;
    if (active && rb != rb0) {
      rowHead(gHead, wGate + size_t(n) * K, K, role.first, role.stride);
      rowHead(uHead, wUp + size_t(n) * K, K, role.first, role.stride);
    }
    float g[M], u[M];
    if (active) {
      warpDot<M>(g, gHead, wGate + size_t(n) * K, x, K, role.first, role.stride);
      warpDot<M>(u, uHead, wUp + size_t(n) * K, x, K, role.first, role.stride);
    } else {
#pragma unroll
      for (int m = 0; m < M; ++m) g[m] = u[m] = 0.f;
    }
    const float gv = partSum<M>(g, red[0], ks, warp, lane);
    const float uv = partSum<M>(u, red[1], ks, warp, lane);
    if (active && lane < M && warp % ks == 0)
      out[size_t(lane) * I + n] = __float2bfloat16_rn(gatedAct<kAct>(gv) * uv);
  }
}

// Warps per row: the fewest (1, 2, 4 or 8) that put about 48 warps on each SM (o_proj/down at
// N = 2048 with one warp per row left half the copy bandwidth unused).
// MIXATTN_CUDA_GEMV_WARPS_PER_SM=N replaces the 48 (a benchmark knob).
int warpsPerRow(const Ctx& c, long long rows) {
  static const long long perSM = [] {
    const char* e = std::getenv("MIXATTN_CUDA_GEMV_WARPS_PER_SM");
    const long long n = e ? std::atoll(e) : 0;
    return n > 0 ? n : 48LL;
  }();
  int ks = 1;
  while (ks < kWarpsPerBlock && rows * ks < perSM * c.numSMs) ks *= 2;
  return ks;
}

// Blocks of a GEMV launch: at most kBlocksPerSM per SM (MIXATTN_CUDA_GEMV_BLOCKS_PER_SM=N
// replaces it, a benchmark knob), each taking row blocks in turn (gemvRows). Few enough that a
// launch's blocks fit beside the kernel before it.
int gemvBlocks(const Ctx& c, long long rowBlocks) {
  static const long long perSM = [] {
    const char* e = std::getenv("MIXATTN_CUDA_GEMV_BLOCKS_PER_SM");
    const long long n = e ? std::atoll(e) : 0;
    return n > 0 ? n : 4LL;
  }();
  return int(std::max(1LL, std::min(rowBlocks, perSM * c.numSMs)));
}

#define MIXATTN_GEMV_ROWS(CASE) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)

template <typename OutT>
void launch(const Ctx& c, OutT* d, const bf16* x, const bf16* w, const bf16* bias, int M, int N,
            int K) {
  const int ks = warpsPerRow(c, N), rowsPerBlock = kWarpsPerBlock / ks;
  const dim3 grid(gemvBlocks(c, (N + rowsPerBlock - 1) / rowsPerBlock)), block(kWarpsPerBlock * 32);
  switch (M) {
#define MIXATTN_GEMV_CASE(m) \
  case m: launchKernel(c, "gemv", gemvKernel<m, OutT>, grid, block, 0, d, x, w, bias, N, K, ks); break;
    MIXATTN_GEMV_ROWS(MIXATTN_GEMV_CASE)
#undef MIXATTN_GEMV_CASE
    default: throw Error("gemv: M must be 1.." + std::to_string(kGemvMaxRows));
  }
}

void launchJobs(const Ctx& c, const GemvJobs& jobs, const bf16* x, int M, int K, int ks) {
  const dim3 grid(jobs.firstBlock[jobs.count]), block(kWarpsPerBlock * 32);
  switch (M) {
#define MIXATTN_GEMV_CASE(m) \
  case m: launchKernel(c, "matmulShared (gemv)", gemvJobsKernel<m>, grid, block, 0, jobs, x, K, ks); break;
    MIXATTN_GEMV_ROWS(MIXATTN_GEMV_CASE)
#undef MIXATTN_GEMV_CASE
    default: throw Error("gemv: M must be 1.." + std::to_string(kGemvMaxRows));
  }
}

template <int kAct>
void launchGated(const Ctx& c, bf16* out, const bf16* x, const bf16* wg, const bf16* wu, int M,
                 int I, int K) {
  const int ks = warpsPerRow(c, I), rowsPerBlock = kWarpsPerBlock / ks;
  const dim3 grid(gemvBlocks(c, (I + rowsPerBlock - 1) / rowsPerBlock)), block(kWarpsPerBlock * 32);
  switch (M) {
#define MIXATTN_GEMV_CASE(m) \
  case m:                                                                                  \
    launchKernel(c, "gatedMatmul (gemv)", gatedGemvKernel<m, kAct>, grid, block, 0, out, x, wg, wu, \
                 I, K, ks);                                                                \
    break;
    MIXATTN_GEMV_ROWS(MIXATTN_GEMV_CASE)
#undef MIXATTN_GEMV_CASE
    default: throw Error("gemv: M must be 1.." + std::to_string(kGemvMaxRows));
  }
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

namespace mixattn {
namespace cuda {

void gemvShared(const Ctx& c, const void* x, int M, int K, const Backend::MatmulOut* outs,
                int count) {
  for (int j0 = 0; j0 < count; j0 += kGemvMaxJobs) {
    GemvJobs jobs{};
    jobs.count = std::min(kGemvMaxJobs, count - j0);
    long long rows = 0;
    for (int j = 0; j < jobs.count; ++j) rows += outs[j0 + j].N;
    const int ks = warpsPerRow(c, rows), rowsPerBlock = kWarpsPerBlock / ks;
    // The launch's blocks (gemvBlocks) shared among the jobs by their row blocks.
    long long rowBlocks = 0;
    for (int j = 0; j < jobs.count; ++j) rowBlocks += (outs[j0 + j].N + rowsPerBlock - 1) / rowsPerBlock;
    const long long blocks = gemvBlocks(c, rowBlocks);
    jobs.firstBlock[0] = 0;
    for (int j = 0; j < jobs.count; ++j) {
      const Backend::MatmulOut& o = outs[j0 + j];
      jobs.out[j] = static_cast<bf16*>(o.out);
      jobs.w[j] = static_cast<const bf16*>(o.w);
      jobs.bias[j] = static_cast<const bf16*>(o.bias);
      jobs.N[j] = o.N;
      const long long rb = (o.N + rowsPerBlock - 1) / rowsPerBlock;
      const long long share = o.N > 0 ? std::min(rb, std::max(1LL, (rb * blocks + rowBlocks - 1) / rowBlocks)) : 0;
      jobs.firstBlock[j + 1] = jobs.firstBlock[j] + int(share);
    }
    if (jobs.firstBlock[jobs.count] > 0) launchJobs(c, jobs, static_cast<const bf16*>(x), M, K, ks);
  }
}

void gatedGemv(const Ctx& c, void* out, const void* x, const void* wGate, const void* wUp, int M,
               int I, int K, Activation act) {
  auto* o = static_cast<bf16*>(out);
  auto* xb = static_cast<const bf16*>(x);
  auto* g = static_cast<const bf16*>(wGate);
  auto* u = static_cast<const bf16*>(wUp);
  if (act == Activation::SiLU)
    launchGated<int(Activation::SiLU)>(c, o, xb, g, u, M, I, K);
  else if (act == Activation::GeluTanh)
    launchGated<int(Activation::GeluTanh)>(c, o, xb, g, u, M, I, K);
  else
    throw Error("gatedMatmul: unknown activation " + std::to_string(int(act)));
}

}  // namespace cuda
}  // namespace mixattn
