// Sampling reductions on the device. argmax: one block per row of fp32 logits; each thread
// keeps the best (value, index) of a strided slice (16-byte loads where the row allows), then
// warp shuffles and one shared-memory round pick the block's best. Ties go to the lowest index
// and NaN never wins, like the CPU twin (so greedy token ids agree exactly).
//
// sample: Backend::sample's rule, one block of 1024 threads per row, never sorting the vocab:
// a pass for the maximum; top-k and top-n thresholds by a 4-level radix select (8 bits per
// level) over order-preserving keys of the logits, counting with warp-aggregated shared
// atomics; a pass writing each token's fp32 weight (0 outside the top-k set) to scratch and
// summing the integer weights; the top-p threshold by the same radix select over the integer
// weights, weighted by themselves (exact 64-bit sums); the draw as a block-wide prefix sum over
// tiles in index order, stopping at the tile that holds the target. All arithmetic that decides
// a token is common/sample_math.h's, so the CPU twin picks the same token bit for bit.
#include <climits>
#include <cmath>

#include "common/sample_math.h"
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
  gridDepLaunchDependents();
  gridDepWait();
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

// One block per row. Every pass streams the row from L2 (it does not fit in shared memory),
// so each thread keeps kSampleUnroll 16-byte loads in flight before using them.
constexpr int kSampleThreads = 512;
constexpr int kSampleWarps = kSampleThreads / 32;
constexpr int kSampleUnroll = 4;                 // groups of 4 elements loaded per iteration
using u64 = unsigned long long;

struct SampleShared {
  u64 hist[256];
  u64 scan[kSampleWarps];
  double sumD[kSampleWarps];
  float maxV[kSampleWarps];
  int maxI[kSampleWarps];
  int countA[kSampleWarps];
  int countB[kSampleWarps];
  u64 selAbove, selAt;
  unsigned selDigit;
  int token;
  int topCount;
  int topIdx[kMaxTopLogprobs];
};

template <typename T>
__device__ __forceinline__ T warpSumAll(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The block's sum, in every thread (the same butterfly in every warp: deterministic).
template <typename T>
__device__ __forceinline__ T blockSum(T v, T* red) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warpSumAll(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = warpSumAll(lane < kSampleWarps ? red[lane] : T(0));
  __syncthreads();
  return v;
}

// Exclusive prefix sum over the block in thread order; *total gets the block's sum.
__device__ __forceinline__ u64 blockExclusiveScan(u64 v, u64* total, u64* scan) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  u64 x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) scan[warp] = x;
  __syncthreads();
  if (warp == 0) {
    u64 w = lane < kSampleWarps ? scan[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    if (lane < kSampleWarps) scan[lane] = w;
  }
  __syncthreads();
  const u64 base = warp > 0 ? scan[warp - 1] : 0;
  *total = scan[kSampleWarps - 1];
  __syncthreads();
  return base + x - v;
}

// Group g of a row: elements [4g, 4g + 4), `pad` past the end. One 16-byte load when aligned.
__device__ __forceinline__ void loadGroup(const float* x, int V, bool vec, int g, float pad,
                                          float (&v)[4]) {
  const int i0 = 4 * g;
  if (vec && i0 + 3 < V) {
    const float4 t = reinterpret_cast<const float4*>(x)[g];
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = i0 + k < V ? x[i0 + k] : pad;
  }
}

// Calls f(i, x[i]) for the whole row, thread t taking groups t, t + kSampleThreads, ...;
// padding calls get i = -1 and `pad`, so every thread of a warp makes the same calls (f may
// hold warp collectives).
template <typename F>
__device__ __forceinline__ void forEachElement(const float* x, int V, bool vec, float pad, F f) {
  const int G = (V + 3) / 4;
  for (int base = 0; base < G; base += kSampleThreads * kSampleUnroll) {
    float v[kSampleUnroll][4];
#pragma unroll
    for (int u = 0; u < kSampleUnroll; ++u)
      loadGroup(x, V, vec, base + u * kSampleThreads + int(threadIdx.x), pad, v[u]);
#pragma unroll
    for (int u = 0; u < kSampleUnroll; ++u)
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int i = 4 * (base + u * kSampleThreads + int(threadIdx.x)) + k;
        f(i < V ? i : -1, v[u][k]);
      }
  }
}

// The largest key K with W(keys >= K) >= need (1 <= need <= W of everything) over the values
// of src that get(x, &key, &weight) accepts, with the weights above K and at K: 4 levels of 8
// bits from the top, each a histogram of the keys that share the prefix chosen so far. Unit
// weights (counts) aggregate a warp's equal digits before the atomic; masses flush per-thread
// runs of one digit (the tail of a peaked distribution lands in one bin).
template <bool kUnitWeights, typename Get>
__device__ void radixSelect(const float* src, int V, bool vec, float pad, Get get, u64 need,
                            SampleShared& sm, unsigned* key, u64* above, u64* at) {
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  unsigned prefix = 0;
  u64 acc = 0, atMass = 0;
  for (int level = 0; level < 4; ++level) {
    const int shift = 24 - 8 * level;
    for (int b = tid; b < 256; b += kSampleThreads) sm.hist[b] = 0;
    __syncthreads();
    int runDigit = -1;
    u64 runW = 0;
    forEachElement(src, V, vec, pad, [&](int i, float x) {
      unsigned k = 0;
      u64 w = 0;
      const bool ok = i >= 0 && get(x, &k, &w) && (u64(k) >> (shift + 8)) == prefix;
      const int d = ok ? int((k >> shift) & 255u) : -1;
      if (kUnitWeights) {
        const unsigned peers = __match_any_sync(0xffffffffu, d);
        if (d >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sm.hist[d], u64(__popc(peers)));
      } else if (ok) {
        if (d != runDigit) {
          if (runW) atomicAdd(&sm.hist[runDigit], runW);
          runDigit = d;
          runW = 0;
        }
        runW += w;
      }
    });
    if (!kUnitWeights && runW) atomicAdd(&sm.hist[runDigit], runW);
    __syncthreads();
    if (warp == 0) {
      // Lane l holds digits 255 - 8l down to 248 - 8l: the scan runs from the largest key.
      u64 s = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) s += sm.hist[255 - 8 * lane - j];
      u64 incl = s;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const u64 y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
      }
      const unsigned hits = __ballot_sync(0xffffffffu, acc + incl >= need);
      if (lane == __ffs(hits) - 1) {
        u64 a = acc + incl - s;
        for (int j = 0; j < 8; ++j) {
          const int d = 255 - 8 * lane - j;
          const u64 h = sm.hist[d];
          if (a + h >= need) {
            sm.selDigit = unsigned(d);
            sm.selAbove = a;
            sm.selAt = h;
            break;
          }
          a += h;
        }
      }
    }
    __syncthreads();
    prefix = (prefix << 8) | sm.selDigit;
    acc = sm.selAbove;
    atMass = sm.selAt;
  }
  *key = prefix;
  *above = acc;
  *at = atMass;
}

__global__ void __launch_bounds__(kSampleThreads, 1)
    sampleKernel(SampleOut out, float* logits, float* weights, const SampleRow* rows,
                 const int32_t* penalties, int V) {
  using namespace ::mixattn::sampling;
  __shared__ SampleShared sm;
  gridDepLaunchDependents();
  gridDepWait();
  const int r = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  float* y = logits + size_t(r) * V;
  float* wr = weights + size_t(r) * V;
  const bool vec = V % 4 == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(weights) % 16 == 0;
  const SampleRow p = rows[r];

  // 0. Penalties, in place (distinct ids: the caller checked them; out-of-range ones skipped).
  const int32_t* pair = penalties + 2 * size_t(p.penaltyStart);
  for (int j = tid; j < p.penaltyCount; j += kSampleThreads) {
    const int id = pair[2 * j];
    if (id >= 0 && id < V)
      y[id] = penalisedLogit(y[id], pair[2 * j + 1], p.repetitionPenalty, p.presencePenalty,
                             p.frequencyPenalty);
  }
  for (int j = tid; j < out.topStride; j += kSampleThreads) {
    out.topIds[size_t(r) * out.topStride + j] = -1;
    out.topLogprobs[size_t(r) * out.topStride + j] = NAN;
  }
  __syncthreads();

  // 1. The maximum (the lowest index among equal maxima, NaN never) and the counts.
  float bv = -INFINITY;
  int bi = INT_MAX, finite = 0, notNan = 0;
  forEachElement(y, V, vec, NAN, [&](int i, float x) {
    better(bv, bi, x, i);
    finite += x > -INFINITY && x < INFINITY;
    notNan += x == x;
  });
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    better(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
  finite = warpSumAll(finite);
  notNan = warpSumAll(notNan);
  if (lane == 0) sm.maxV[warp] = bv, sm.maxI[warp] = bi, sm.countA[warp] = finite, sm.countB[warp] = notNan;
  __syncthreads();
  bv = lane < kSampleWarps ? sm.maxV[lane] : -INFINITY;
  bi = lane < kSampleWarps ? sm.maxI[lane] : INT_MAX;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    better(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
  finite = warpSumAll(lane < kSampleWarps ? sm.countA[lane] : 0);
  notNan = warpSumAll(lane < kSampleWarps ? sm.countB[lane] : 0);
  const float m = bv;
  if (!(m > -INFINITY && m < INFINITY)) {  // block-uniform
    if (tid == 0) out.ids[r] = -1, out.logprobs[r] = NAN;
    return;
  }

  const bool greedy = p.temperature == 0.f;
  const float invT = greedy ? 1.f : invTemperature(p.temperature);
  double sumAll = 0;  // sum_C0 w: the logprobs' normaliser
  int token = bi;
  if (greedy) {
    if (p.logprobs || p.topLogprobs > 0) {
      double s = 0;
      forEachElement(y, V, vec, NAN, [&](int, float x) {
        if (x > -INFINITY) s += expWeight(scaledLogit(x, m, invT));
      });
      sumAll = blockSum(s, sm.sumD);
    }
  } else {
    // 4. top-k threshold: the k-th largest finite logit.
    float kth = -INFINITY;
    if (p.topK > 0 && p.topK < finite) {
      unsigned key;
      u64 above, at;
      radixSelect<true>(
          y, V, vec, NAN,
          [](float x, unsigned* k, u64* w) {
            if (!(x > -INFINITY)) return false;
            *k = orderedKey(x);
            *w = 1;
            return true;
          },
          u64(p.topK), sm, &key, &above, &at);
      kth = keyToFloat(key);
    }
    // 3. Weights: w of C1 to scratch (0 elsewhere) and sum_C1 q; sum_C0 w when the logprobs
    // need it (else the tokens outside the top-k set cost no exp).
    const bool wantSum = p.logprobs || p.topLogprobs > 0;
    double s = 0;
    u64 mass = 0;
    forEachElement(y, V, vec, NAN, [&](int i, float x) {
      float kept = 0.f;
      if (x > -INFINITY && (x >= kth || wantSum)) {
        const float w = expWeight(scaledLogit(x, m, invT));
        s += w;
        if (x >= kth) {
          kept = w;
          mass += integerWeight(w);
        }
      }
      if (i >= 0) wr[i] = kept;
    });
    sumAll = blockSum(s, sm.sumD);
    mass = blockSum(mass, sm.scan);  // its barriers also publish wr to the block
    // 5. top-p threshold over the integer weights.
    unsigned theta = 0;
    u64 keptMass = mass;
    if (p.topP < 1.f) {
      const u64 need = u64(ceil(__dmul_rn(double(p.topP), double(mass))));
      u64 above, at;
      radixSelect<false>(
          wr, V, vec, 0.f,
          [](float w, unsigned* k, u64* wt) {
            const unsigned q = integerWeight(w);
            *k = q;
            *wt = q;
            return q > 0;
          },
          need, sm, &theta, &above, &at);
      keptMass = above + at;
    }
    // 6. min-p.
    const float minP = p.minP > 0.f ? p.minP : 0.f;
    if (minP > 0.f) {
      u64 k = 0;
      forEachElement(wr, V, vec, 0.f, [&](int, float w) {
        const unsigned q = integerWeight(w);
        if (q >= theta && w >= minP) k += q;
      });
      keptMass = blockSum(k, sm.scan);
    }
    // 7. The draw: the first kept token, in index order, whose running mass exceeds t.
    const u64 t = min(u64(floor(__dmul_rn(p.uniform, double(keptMass)))), keptMass - 1);
    if (tid == 0) sm.token = -1;
    __syncthreads();
    u64 carry = 0;
    for (int g0 = 0; 4 * g0 < V; g0 += kSampleThreads) {
      float w[4];
      loadGroup(wr, V, vec, g0 + tid, 0.f, w);
      u64 q[4], local = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const unsigned qq = integerWeight(w[k]);
        q[k] = qq >= theta && w[k] >= minP ? qq : 0;
        local += q[k];
      }
      u64 total;
      const u64 lo = carry + blockExclusiveScan(local, &total, sm.scan);
      if (t >= lo && t < lo + local) {
        u64 a = lo;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          a += q[k];
          if (a > t && a - q[k] <= t) sm.token = 4 * (g0 + tid) + k;
        }
      }
      __syncthreads();
      if (sm.token >= 0) break;
      carry += total;
    }
    token = sm.token;
  }
  const double logZ = log(sumAll);
  if (tid == 0) {
    out.ids[r] = token;
    out.logprobs[r] = p.logprobs ? float(double(scaledLogit(y[token], m, invT)) - logZ) : NAN;
  }

  // Top logprobs: the n-th largest key, the keys above it, then its ties in index order.
  if (p.topLogprobs > 0) {
    const int n = min(p.topLogprobs, notNan);
    unsigned kthKey;
    u64 above, at;
    radixSelect<true>(
        y, V, vec, NAN,
        [](float x, unsigned* k, u64* w) {
          if (x != x) return false;
          *k = orderedKey(x);
          *w = 1;
          return true;
        },
        u64(n), sm, &kthKey, &above, &at);
    if (tid == 0) sm.topCount = 0;
    __syncthreads();
    forEachElement(y, V, vec, NAN, [&](int i, float x) {
      if (x == x && orderedKey(x) > kthKey) sm.topIdx[atomicAdd(&sm.topCount, 1)] = i;
    });
    __syncthreads();
    const int greater = sm.topCount;  // < n
    const u64 ties = u64(n - greater);
    u64 got = 0;
    for (int g0 = 0; 4 * g0 < V && got < ties; g0 += kSampleThreads) {
      float x[4];
      loadGroup(y, V, vec, g0 + tid, NAN, x);
      bool eq[4];
      u64 local = 0;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        eq[k] = x[k] == x[k] && orderedKey(x[k]) == kthKey;
        local += eq[k];
      }
      u64 total;
      u64 pos = got + blockExclusiveScan(local, &total, sm.scan);
#pragma unroll
      for (int k = 0; k < 4; ++k)
        if (eq[k]) {
          if (pos < ties) sm.topIdx[greater + int(pos)] = 4 * (g0 + tid) + k;
          ++pos;
        }
      got += total;
    }
    __syncthreads();
    if (tid == 0) {
      // Most likely first, ties by lower index (insertion sort of <= 20).
      for (int a = 1; a < n; ++a) {
        const int ia = sm.topIdx[a];
        const unsigned ka = orderedKey(y[ia]);
        int b = a - 1;
        while (b >= 0) {
          const int ib = sm.topIdx[b];
          const unsigned kb = orderedKey(y[ib]);
          if (kb > ka || (kb == ka && ib < ia)) break;
          sm.topIdx[b + 1] = ib;
          --b;
        }
        sm.topIdx[b + 1] = ia;
      }
      for (int j = 0; j < n; ++j) {
        const int i = sm.topIdx[j];
        out.topIds[size_t(r) * out.topStride + j] = i;
        out.topLogprobs[size_t(r) * out.topStride + j] =
            float(double(scaledLogit(y[i], m, invT)) - logZ);
      }
    }
  }
}

}  // namespace

void sample(const Ctx& c, const SampleOut& out, float* logits, float* weights,
            const SampleRow* rows, const int32_t* penalties, int numRows, int vocab) {
  launchKernel(c, "sample", sampleKernel, numRows, kSampleThreads, 0, out, logits, weights, rows,
               penalties, vocab);
}

void argmax(const Ctx& c, int32_t* out, const float* logits, int rows, int vocab) {
  launchKernel(c, "argmax", argmaxKernel, rows, kArgmaxThreads, 0, out, logits, vocab);
}

}  // namespace cuda
}  // namespace mixattn
