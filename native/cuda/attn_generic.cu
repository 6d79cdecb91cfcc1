// Attention for any head dims (the tests' 6, 8, 10, 12, kDim != vDim) and f32 or bf16 pages:
// one block per (row, query head), 128 keys per round, one key per thread, online softmax
// across rounds. Simple and correct rather than fast: the model shapes that matter go
// through attn_decode.cu or attn_prefill_*.cu.
#include <cmath>

#include "cuda/common.cuh"

namespace mixattn {
namespace cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxVChunks = 8;  // vDim <= 8 * 128

__device__ float blockReduce(float v, float* red, bool isMax) {
  v = isMax ? warpMax(v) : warpSum(v);
  const int w = threadIdx.x / 32;
  __syncthreads();  // red may still be read from the previous reduction
  if (threadIdx.x % 32 == 0) red[w] = v;
  __syncthreads();
  float r = red[0];
  for (int i = 1; i < kThreads / 32; ++i) r = isMax ? fmaxf(r, red[i]) : r + red[i];
  return r;
}

template <typename KT>
__global__ void __launch_bounds__(kThreads) genericKernel(AttnArgs a, DeviceError* err) {
  extern __shared__ float smem[];
  float* q = smem;                 // [kDim]
  float* prob = q + a.kDim;        // [kThreads]
  int* page = reinterpret_cast<int*>(prob + kThreads);  // [kThreads]
  __shared__ float red[kThreads / 32];
  gridDepLaunchDependents();
  gridDepWait();

  const int head = blockIdx.x, t = blockIdx.y, tid = threadIdx.x;
  const int g = head / (a.numHeads / a.numKvHeads);
  const int s = a.seqOfToken[t], p = a.positions[t];
  bf16* out = static_cast<bf16*>(a.out) + ((size_t)t * a.numHeads + head) * a.vDim;
  if (s < 0 || s >= a.numSeqs || p < 0) {
    if (tid == 0) reportError(err, s < 0 || s >= a.numSeqs ? kErrSeqRange : kErrNegativePos,
                              kOpAttention, s, p);
    for (int d = tid; d < a.vDim; d += kThreads) out[d] = fromF<bf16>(0.f);
    return;
  }
  const bf16* qin = static_cast<const bf16*>(a.q) + ((size_t)t * a.numHeads + head) * a.kDim;
  for (int d = tid; d < a.kDim; d += kThreads) q[d] = toF(qin[d]);
  __syncthreads();

  float o[kMaxVChunks];
#pragma unroll
  for (int i = 0; i < kMaxVChunks; ++i) o[i] = 0.f;
  float m = -INFINITY, l = 0.f;
  for (int base = keyLo(p, a.window); base <= p; base += kThreads) {
    const int key = base + tid;
    float sc = -INFINITY;
    int pg = -1;
    if (key <= p) {
      pg = lookupPage(a, s, key, err, kOpAttention);
      if (pg >= 0) {
        const KT* k = reinterpret_cast<const KT*>(a.arena + (size_t)pg * a.pageBytes +
                                                  kOffset(a, g, key % a.blockSize, sizeof(KT)));
        float dot = 0.f;
        for (int d = 0; d < a.kDim; ++d) dot += q[d] * toF(k[d]);
        sc = capScore(dot, a.scale, a.softcap);
      }
    }
    const float mNew = fmaxf(m, blockReduce(sc, red, true));
    const float pr = mNew == -INFINITY ? 0.f : expf(sc - mNew);
    prob[tid] = pr;
    page[tid] = pg;
    const float sum = blockReduce(pr, red, false);  // its barriers publish prob/page too
    const float corr = mNew == -INFINITY ? 1.f : expf(m - mNew);
    l = l * corr + sum;
    m = mNew;
    const int n = min(kThreads, p - base + 1);
#pragma unroll
    for (int i = 0; i < kMaxVChunks; ++i) {
      const int d = tid + i * kThreads;
      if (d >= a.vDim) break;
      float acc = o[i] * corr;
      for (int j = 0; j < n; ++j) {
        if (page[j] < 0) continue;
        const KT* v = reinterpret_cast<const KT*>(
            a.arena + (size_t)page[j] * a.pageBytes + vOffset(a, g, (base + j) % a.blockSize, sizeof(KT)));
        acc += prob[j] * toF(v[d]);
      }
      o[i] = acc;
    }
    __syncthreads();  // prob/page are rewritten next round
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int i = 0; i < kMaxVChunks; ++i) {
    const int d = tid + i * kThreads;
    if (d < a.vDim) out[d] = fromF<bf16>(o[i] * inv);
  }
}

}  // namespace

void attentionGeneric(const Ctx& c, const AttnArgs& a) {
  if (a.vDim > kMaxVChunks * kThreads)
    throw Error("attention: value width " + std::to_string(a.vDim) + " exceeds " +
                std::to_string(kMaxVChunks * kThreads) + " (generic CUDA path)");
  const size_t smem = size_t(a.kDim) * sizeof(float) + kThreads * (sizeof(float) + sizeof(int));
  const dim3 grid(unsigned(a.numHeads), unsigned(a.numTokens));
  const char* op = "attention (generic)";
  if (a.kvType == DType::BF16)
    launchKernel(c, op, genericKernel<bf16>, grid, kThreads, smem, a, c.err);
  else
    launchKernel(c, op, genericKernel<float>, grid, kThreads, smem, a, c.err);
}

}  // namespace cuda
}  // namespace mixattn
