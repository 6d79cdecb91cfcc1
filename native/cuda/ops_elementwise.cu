// Row-wise and elementwise kernels: embedding, RMSNorm (plain and fused with the residual
// add), add, row gather, gated activations, soft-cap and dtype conversions. All are memory
// bound; each reads and writes every element once (RMSNorm twice: the second read of a row
// comes from L1/L2). Math in fp32, results rounded once to bf16.
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "cuda/common.cuh"

namespace mixattn {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row

template <typename TT>
__global__ void embeddingKernel(bf16* out, const int32_t* tokens, int n, const TT* table,
                                int vocab, int dim, float scale, DeviceError* err) {
  gridDepLaunchDependents();
  gridDepWait();
  const int i = blockIdx.x;
  const int tok = tokens[i];
  if (tok < 0 || tok >= vocab) {
    if (threadIdx.x == 0) reportError(err, kErrToken, kOpEmbedding, i, tok, vocab);
    return;
  }
  const TT* row = table + (size_t)tok * dim;
  bf16* o = out + (size_t)i * dim;
  for (int k = threadIdx.x; k < dim; k += blockDim.x) o[k] = fromF<bf16>(toF(row[k]) * scale);
}

// One warp per row: y = x / sqrt(mean(x²) + eps) * w. `out` may equal `in`: each lane reads
// and writes the same elements in both passes.
template <typename WT>
__global__ void rmsnormKernel(bf16* out, const bf16* in, const WT* w, int rows, int dim,
                              float eps) {
  gridDepLaunchDependents();
  gridDepWait();
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const bf16* x = in + (size_t)row * dim;
  float ss = 0.f;
  for (int k = lane; k < dim; k += 32) {
    float v = toF(x[k]);
    ss += v * v;
  }
  const float inv = rsqrtf(warpSum(ss) / dim + eps);
  bf16* o = out + (size_t)row * dim;
  for (int k = lane; k < dim; k += 32) o[k] = fromF<bf16>(toF(x[k]) * inv * toF(w[k]));
}

// residual += delta (rounded to bf16, as stored); out = rmsnorm(residual) * w.
// `out` may equal `delta`: a lane reads delta[k] before it writes out[k], same lane.
template <typename WT>
__global__ void addRmsnormKernel(bf16* out, bf16* residual, const bf16* delta, const WT* w,
                                 int rows, int dim, float eps) {
  gridDepLaunchDependents();
  gridDepWait();
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  bf16* r = residual + (size_t)row * dim;
  const bf16* d = delta + (size_t)row * dim;
  float ss = 0.f;
  for (int k = lane; k < dim; k += 32) {
    bf16 s = fromF<bf16>(toF(r[k]) + toF(d[k]));
    r[k] = s;
    float v = toF(s);
    ss += v * v;
  }
  const float inv = rsqrtf(warpSum(ss) / dim + eps);
  bf16* o = out + (size_t)row * dim;
  for (int k = lane; k < dim; k += 32) o[k] = fromF<bf16>(toF(r[k]) * inv * toF(w[k]));
}

// Wide rows (the hidden state: dim >= kWideDim, dim % 8 == 0, 16-byte aligned): one block
// per row, 16-byte loads, each thread's 8-element chunks held in registers between the sum of
// squares and the scaling. The warp-per-row kernels above issue dim/32 dependent loads per lane
// (residual and delta may alias, so the compiler cannot batch them): ~30 us for one 2048-wide
// row, most of a batch-1 decode step. kAdd: residual += delta first (addRmsnorm).
constexpr int kWideDim = 512;
constexpr int kWideThreads = 256;
constexpr int kWideMaxChunks = 8;  // dim <= 8 * 8 * 256 = 16384

__device__ __forceinline__ void loadW8(const bf16* w, int k, float (&f)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(w + k);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}
__device__ __forceinline__ void loadW8(const float* w, int k, float (&f)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(w + k);
  const float4 b = *reinterpret_cast<const float4*>(w + k + 4);
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

template <typename WT, bool kAdd>
__global__ void __launch_bounds__(kWideThreads)
    wideNormKernel(bf16* out, bf16* residual, const bf16* in, const WT* w, int dim, float eps) {
  gridDepLaunchDependents();
  const size_t row = blockIdx.x;
  const int chunks = dim >> 3;
  // The weights of this thread's first chunk (all of them for dim <= 8·kWideThreads) are
  // constant across the step: read before the wait (launch.cuh).
  float w0[8] = {};
  if (int(threadIdx.x) < chunks) loadW8(w, 8 * threadIdx.x, w0);
  gridDepWait();
  bf16* r = residual + row * dim;  // kAdd: the residual stream; else unused
  const bf16* x = (kAdd ? r : in + row * dim);
  const bf16* d = in + row * dim;   // kAdd: the delta
  uint4 v[kWideMaxChunks];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kWideMaxChunks; ++j) {
    const int c = threadIdx.x + j * kWideThreads;
    if (c >= chunks) break;
    uint4 a = *reinterpret_cast<const uint4*>(x + 8 * c);
    if (kAdd) {
      const uint4 b = *reinterpret_cast<const uint4*>(d + 8 * c);
      __nv_bfloat162* a2 = reinterpret_cast<__nv_bfloat162*>(&a);
      const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 fa = __bfloat1622float2(a2[i]), fb = __bfloat1622float2(b2[i]);
        a2[i] = __floats2bfloat162_rn(fa.x + fb.x, fa.y + fb.y);  // rounded as stored
      }
      *reinterpret_cast<uint4*>(r + 8 * c) = a;
    }
    v[j] = a;
    const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(a2[i]);
      ss += f.x * f.x + f.y * f.y;
    }
  }
  __shared__ float warpSums[kWideThreads / 32];
  ss = warpSum(ss);
  if ((threadIdx.x & 31) == 0) warpSums[threadIdx.x >> 5] = ss;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int i = 0; i < kWideThreads / 32; ++i) total += warpSums[i];
  const float inv = rsqrtf(total / dim + eps);
  bf16* o = out + row * dim;
#pragma unroll
  for (int j = 0; j < kWideMaxChunks; ++j) {
    const int c = threadIdx.x + j * kWideThreads;
    if (c >= chunks) break;
    float wf[8];
    if (j == 0) {
#pragma unroll
      for (int i = 0; i < 8; ++i) wf[i] = w0[i];
    } else {
      loadW8(w, 8 * c, wf);
    }
    const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&v[j]);
    uint4 res;
    __nv_bfloat162* r2 = reinterpret_cast<__nv_bfloat162*>(&res);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(a2[i]);
      r2[i] = __floats2bfloat162_rn(f.x * inv * wf[2 * i], f.y * inv * wf[2 * i + 1]);
    }
    *reinterpret_cast<uint4*>(o + 8 * c) = res;
  }
}

bool wideRows(int dim, std::initializer_list<const void*> ptrs) {
  if (dim < kWideDim || dim % 8 != 0 || dim > 8 * kWideMaxChunks * kWideThreads) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) & 15u) return false;
  return true;
}

__global__ void addKernel(bf16* inout, const bf16* in, size_t n) {
  gridDepLaunchDependents();
  gridDepWait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    inout[i] = fromF<bf16>(toF(inout[i]) + toF(in[i]));
}

__global__ void gatherKernel(bf16* out, const bf16* in, const int32_t* index, int dim,
                             DeviceError* err) {
  gridDepLaunchDependents();
  gridDepWait();
  const int i = blockIdx.x, src = index[i];
  if (src < 0) {
    if (threadIdx.x == 0) reportError(err, kErrGatherIndex, kOpGatherRows, i, src);
    return;
  }
  for (int k = threadIdx.x; k < dim; k += blockDim.x)
    out[(size_t)i * dim + k] = in[(size_t)src * dim + k];
}

template <int kAct>
__global__ void gatedKernel(bf16* out, const bf16* gate, const bf16* up, size_t n) {
  gridDepLaunchDependents();
  gridDepWait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float g = toF(gate[i]), u = toF(up[i]);
    out[i] = fromF<bf16>(gatedAct<kAct>(g) * u);
  }
}

__global__ void softcapKernel(float* x, size_t n, float cap) {
  gridDepLaunchDependents();
  gridDepWait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] / cap);
}

template <typename S, typename D>
__global__ void convertKernel(D* dst, const S* src, size_t n) {
  gridDepLaunchDependents();
  gridDepWait();
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] = fromF<D>(toF(src[i]));
}

// Grid for a grid-stride loop over n elements: enough blocks to fill the GPU, no more.
unsigned flatBlocks(const Ctx& c, size_t n) {
  size_t want = (n + kThreads - 1) / kThreads;
  size_t cap = size_t(c.numSMs) * 8;
  return unsigned(want < 1 ? 1 : (want > cap ? cap : want));
}

}  // namespace

void embedding(const Ctx& c, void* out, const int32_t* tokens, int n, const void* table,
               DType tableType, int vocab, int dim, float scale) {
  if (n <= 0 || dim <= 0) return;
  const unsigned threads = dim >= 256 ? 256 : 64;
  auto* o = static_cast<bf16*>(out);
  if (tableType == DType::BF16)
    launchKernel(c, "embedding", embeddingKernel<bf16>, n, threads, 0, o, tokens, n,
                 static_cast<const bf16*>(table), vocab, dim, scale, c.err);
  else
    launchKernel(c, "embedding", embeddingKernel<float>, n, threads, 0, o, tokens, n,
                 static_cast<const float*>(table), vocab, dim, scale, c.err);
}

void rmsnorm(const Ctx& c, void* out, const void* in, const void* w, DType wType, int rows,
             int dim, float eps) {
  if (rows <= 0 || dim <= 0) return;
  auto* o = static_cast<bf16*>(out);
  auto* x = static_cast<const bf16*>(in);
  bf16* noResidual = nullptr;
  if (wideRows(dim, {out, in, w})) {
    if (wType == DType::BF16)
      launchKernel(c, "rmsnorm", wideNormKernel<bf16, false>, rows, kWideThreads, 0, o,
                   noResidual, x, static_cast<const bf16*>(w), dim, eps);
    else
      launchKernel(c, "rmsnorm", wideNormKernel<float, false>, rows, kWideThreads, 0, o,
                   noResidual, x, static_cast<const float*>(w), dim, eps);
    return;
  }
  const unsigned blocks = ceilDiv(size_t(rows), kRowsPerBlock);
  if (wType == DType::BF16)
    launchKernel(c, "rmsnorm", rmsnormKernel<bf16>, blocks, kThreads, 0, o, x,
                 static_cast<const bf16*>(w), rows, dim, eps);
  else
    launchKernel(c, "rmsnorm", rmsnormKernel<float>, blocks, kThreads, 0, o, x,
                 static_cast<const float*>(w), rows, dim, eps);
}

void addRmsnorm(const Ctx& c, void* out, void* residual, const void* delta, const void* w,
                DType wType, int rows, int dim, float eps) {
  if (rows <= 0 || dim <= 0) return;
  const unsigned blocks = ceilDiv(size_t(rows), kRowsPerBlock);
  auto* o = static_cast<bf16*>(out);
  auto* r = static_cast<bf16*>(residual);
  auto* d = static_cast<const bf16*>(delta);
  if (wideRows(dim, {out, residual, delta, w})) {
    if (wType == DType::BF16)
      launchKernel(c, "addRmsnorm", wideNormKernel<bf16, true>, rows, kWideThreads, 0, o, r, d,
                   static_cast<const bf16*>(w), dim, eps);
    else
      launchKernel(c, "addRmsnorm", wideNormKernel<float, true>, rows, kWideThreads, 0, o, r, d,
                   static_cast<const float*>(w), dim, eps);
    return;
  }
  if (wType == DType::BF16)
    launchKernel(c, "addRmsnorm", addRmsnormKernel<bf16>, blocks, kThreads, 0, o, r, d,
                 static_cast<const bf16*>(w), rows, dim, eps);
  else
    launchKernel(c, "addRmsnorm", addRmsnormKernel<float>, blocks, kThreads, 0, o, r, d,
                 static_cast<const float*>(w), rows, dim, eps);
}

void add(const Ctx& c, void* inout, const void* in, size_t n) {
  if (!n) return;
  launchKernel(c, "add", addKernel, flatBlocks(c, n), kThreads, 0, static_cast<bf16*>(inout),
               static_cast<const bf16*>(in), n);
}

void gatherRows(const Ctx& c, void* out, const void* in, const int32_t* index, int rows,
                int dim) {
  if (rows <= 0 || dim <= 0) return;
  launchKernel(c, "gatherRows", gatherKernel, rows, dim >= 256 ? 256 : 64, 0,
               static_cast<bf16*>(out), static_cast<const bf16*>(in), index, dim, c.err);
}

void gatedActivation(const Ctx& c, void* out, const void* gate, const void* up, size_t n,
                     Activation act) {
  if (!n) return;
  auto* o = static_cast<bf16*>(out);
  auto* g = static_cast<const bf16*>(gate);
  auto* u = static_cast<const bf16*>(up);
  const char* op = "gatedActivation";
  if (act == Activation::SiLU)
    launchKernel(c, op, gatedKernel<int(Activation::SiLU)>, flatBlocks(c, n), kThreads, 0, o, g, u, n);
  else if (act == Activation::GeluTanh)
    launchKernel(c, op, gatedKernel<int(Activation::GeluTanh)>, flatBlocks(c, n), kThreads, 0, o, g, u, n);
  else
    throw Error("gatedActivation: unknown activation " + std::to_string(int(act)));
}

void softcapInPlace(const Ctx& c, float* x, size_t n, float cap) {
  if (!n) return;
  launchKernel(c, "logits (soft-cap)", softcapKernel, flatBlocks(c, n), kThreads, 0, x, n, cap);
}

void bf16ToF32(const Ctx& c, float* dst, const void* src, size_t n) {
  if (!n) return;
  launchKernel(c, "convert bf16->f32", convertKernel<bf16, float>, flatBlocks(c, n), kThreads, 0,
               dst, static_cast<const bf16*>(src), n);
}

void f32ToBf16(const Ctx& c, void* dst, const float* src, size_t n) {
  if (!n) return;
  launchKernel(c, "convert f32->bf16", convertKernel<float, bf16>, flatBlocks(c, n), kThreads, 0,
               static_cast<bf16*>(dst), src, n);
}

}  // namespace cuda
}  // namespace mixattn
