// Paged decode attention, split-KV (flash-decoding), for f32 pages (bf16 pages go to the
// tensor-core kernel in attn_decode_mma.cu; the split logic and the combine kernel here serve
// both). A block handles one (row, KV head, split): the G query heads of the group share every K/V tile it loads, so each K/V byte is
// read once per group. Rows are independent (any mix of decode tokens and prefill rows
// works); each row's keys [lo, p] are cut into `splits` ranges of `chunk` keys so that a
// small batch with long contexts still fills the GPU. Partial results (normalised output and
// log-sum-exp) are merged by the last block of each (row, group) to finish (split_merge.cuh),
// or by combineKernel where that cannot run; with one split the block writes bf16 directly.
//
// Tiles of 16 KB of K and 16 KB of V are brought in with cp.async through the block table,
// two stages deep, so the next tile's reads are in flight while this one is computed.
#include <algorithm>
#include <cstdlib>
#include <cmath>

#include "cuda/attention.h"
#include "cuda/common.cuh"
#include "cuda/cp_async.cuh"
#include "cuda/split_merge.cuh"

namespace mixattn {
namespace cuda {

namespace {

constexpr int kThreads = 128;

template <int D, typename KT>
struct DecodeTraits {
  static constexpr int kES = sizeof(KT);
  static constexpr int TK = 16384 / (D * kES);  // keys per tile
  static constexpr int LD = D + 16 / kES;       // row stride: 16 padding bytes avoid bank conflicts
  static constexpr int CPR = D * kES / 16;      // 16-byte chunks per row
  static constexpr int kLoads = TK * CPR / kThreads;
  static constexpr size_t tileBytes = size_t(TK) * LD * kES;
  static_assert(TK * CPR % kThreads == 0, "tile chunks must divide among the threads");
  static size_t smem(int G) {
    return 4 * tileBytes + 2 * TK * sizeof(int) +
           (size_t(2) * G * D + size_t(G) * TK + 3 * G) * sizeof(float);
  }
};

// The f32 kernel's split merge as a call: inlined, it cost that kernel ~130 bytes of spills
// (the tensor-core kernels inline it at no cost).
__device__ __noinline__ void mergeIfLastSplitCall(unsigned* counters, bf16* out, const float* partO,
                                                  const float* partLse, int splits, int nh,
                                                  int width, size_t rowHead, float* sMem) {
  mergeIfLastSplit(counters, out, partO, partLse, splits, nh, width, rowHead, sMem);
}

template <int D, typename KT>
__global__ void __launch_bounds__(kThreads)
    decodeKernel(AttnArgs a, int splits, int chunk, float* partO, float* partLse,
                 unsigned* counters, DeviceError* err) {
  using Tr = DecodeTraits<D, KT>;
  constexpr int TK = Tr::TK, LD = Tr::LD;
  const int sp = blockIdx.x, g = blockIdx.y, t = blockIdx.z, tid = threadIdx.x;
  const int G = a.numHeads / a.numKvHeads, head0 = g * G;
  extern __shared__ __align__(16) unsigned char smem[];
  KT* sK = reinterpret_cast<KT*>(smem);
  KT* sV = reinterpret_cast<KT*>(smem + 2 * Tr::tileBytes);
  int* sValid = reinterpret_cast<int*>(smem + 4 * Tr::tileBytes);
  float* sQ = reinterpret_cast<float*>(sValid + 2 * TK);
  float* sS = sQ + G * D;
  float* sO = sS + G * TK;
  float* sM = sO + G * D;
  float* sL = sM + G;
  float* sC = sL + G;
  gridDepLaunchDependents();
  gridDepWait();

  const int s = a.seqOfToken[t];
  int kBeg, kEnd;
  splitKeyRange(a, t, sp, splits, chunk, tid, err, &kBeg, &kEnd);
  const size_t rowHead = (size_t)t * a.numHeads + head0;  // first output (t, head0)
  if (kBeg >= kEnd) {  // an empty split (or a bad row): contributes nothing
    for (int e = tid; e < G * D; e += kThreads) {
      const int h = e / D, d = e % D;
      if (splits == 1) {
        static_cast<bf16*>(a.out)[(rowHead + h) * D + d] = fromF<bf16>(0.f);
      } else {
        partO[((rowHead + h) * splits + sp) * D + d] = 0.f;
        if (d == 0) partLse[(rowHead + h) * splits + sp] = -INFINITY;
      }
    }
    if (splits > 1)
      mergeIfLastSplitCall(counters, static_cast<bf16*>(a.out), partO, partLse, splits, G, D,
                           rowHead, reinterpret_cast<float*>(smem));
    return;
  }

  const bf16* q = static_cast<const bf16*>(a.q) + rowHead * D;
  for (int e = tid; e < G * D; e += kThreads) {
    sQ[e] = toF(q[e]);
    sO[e] = 0.f;
  }
  for (int h = tid; h < G; h += kThreads) {
    sM[h] = -INFINITY;
    sL[h] = 0.f;
  }

  auto loadTile = [&](int n, int buf) {
    const int kStart = kBeg + n * TK;
#pragma unroll
    for (int i = 0; i < Tr::kLoads; ++i) {
      const int c = tid + i * kThreads, j = c / Tr::CPR, ch = c % Tr::CPR, key = kStart + j;
      const int pg = key < kEnd ? lookupPage(a, s, key, err, kOpAttention) : -1;
      const char* base = a.arena + (pg < 0 ? 0 : (size_t)pg * a.pageBytes);
      const int off = blockOffset(a, key);
      cpAsync16(sK + (size_t)(buf * TK + j) * LD + ch * (16 / sizeof(KT)),
                base + kOffset(a, g, off, sizeof(KT)) + ch * 16, pg >= 0);
      cpAsync16(sV + (size_t)(buf * TK + j) * LD + ch * (16 / sizeof(KT)),
                base + vOffset(a, g, off, sizeof(KT)) + ch * 16, pg >= 0);
      if (ch == 0) sValid[buf * TK + j] = pg >= 0;
    }
    cpAsyncCommit();
  };

  const int nTiles = (kEnd - kBeg + TK - 1) / TK;
  loadTile(0, 0);
  for (int n = 0; n < nTiles; ++n) {
    const int buf = n & 1, kStart = kBeg + n * TK;
    if (n + 1 < nTiles) {
      loadTile(n + 1, buf ^ 1);
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();

    // Scores for the G heads x TK keys of this tile.
    const KT* kt = sK + (size_t)buf * TK * LD;
    for (int idx = tid; idx < G * TK; idx += kThreads) {
      const int h = idx / TK, j = idx % TK;
      float sc = -INFINITY;
      if (kStart + j < kEnd && sValid[buf * TK + j]) {
        const float* qh = sQ + h * D;
        const KT* kr = kt + (size_t)j * LD;
        float dot = 0.f;
#pragma unroll 8
        for (int d = 0; d < D; ++d) dot += qh[d] * toF(kr[d]);
        sc = capScore(dot, a.scale, a.softcap);
      }
      sS[idx] = sc;
    }
    __syncthreads();

    // Online softmax, one warp per head.
    for (int h = tid / 32; h < G; h += kThreads / 32) {
      const int lane = tid % 32;
      float mx = -INFINITY;
      for (int j = lane; j < TK; j += 32) mx = fmaxf(mx, sS[h * TK + j]);
      const float mOld = sM[h], mNew = fmaxf(mOld, warpMax(mx));
      float sum = 0.f;
      for (int j = lane; j < TK; j += 32) {
        const float pr = mNew == -INFINITY ? 0.f : expf(sS[h * TK + j] - mNew);
        sS[h * TK + j] = pr;
        sum += pr;
      }
      sum = warpSum(sum);
      __syncwarp();  // every lane has read sM[h] before lane 0 rewrites it
      if (lane == 0) {
        const float corr = mNew == -INFINITY ? 1.f : expf(mOld - mNew);
        sC[h] = corr;
        sL[h] = sL[h] * corr + sum;
        sM[h] = mNew;
      }
    }
    __syncthreads();

    // O = O * corr + P · V; each thread owns fixed (head, dim) outputs.
    const KT* vt = sV + (size_t)buf * TK * LD;
    for (int e = tid; e < G * D; e += kThreads) {
      const int h = e / D, d = e % D;
      const float* pr = sS + h * TK;
      float acc = sO[e] * sC[h];
#pragma unroll 8
      for (int j = 0; j < TK; ++j) acc += pr[j] * toF(vt[(size_t)j * LD + d]);
      sO[e] = acc;
    }
    __syncthreads();  // the next iteration's loads overwrite the other stage
  }

  for (int e = tid; e < G * D; e += kThreads) {
    const int h = e / D, d = e % D;
    const float l = sL[h], inv = l > 0.f ? 1.f / l : 0.f;
    if (splits == 1) {
      static_cast<bf16*>(a.out)[(rowHead + h) * D + d] = fromF<bf16>(sO[e] * inv);
    } else {
      partO[((rowHead + h) * splits + sp) * D + d] = sO[e] * inv;
      if (d == 0) partLse[(rowHead + h) * splits + sp] = l > 0.f ? sM[h] + logf(l) : -INFINITY;
    }
  }
  if (splits > 1)
    mergeIfLastSplitCall(counters, static_cast<bf16*>(a.out), partO, partLse, splits, G, D, rowHead,
                         reinterpret_cast<float*>(smem));
}

// One block per (row, head): the same merge as the decode kernels' last blocks.
__global__ void combineKernel(bf16* out, const float* partO, const float* partLse, int splits,
                              int D) {
  extern __shared__ float sMerge[];
  gridDepLaunchDependents();
  gridDepWait();
  mergeSplits(out, partO, partLse, splits, 1, D, blockIdx.x, sMerge);
}

// bf16 pages go to attn_decode_mma.cu (64-key tiles); f32 pages stay here.
int decodeTileKeys(const AttnArgs& a) {
  if (a.kvType == DType::BF16) return 64;
  return a.kDim == 64 ? DecodeTraits<64, float>::TK
                      : a.kDim == 128 ? DecodeTraits<128, float>::TK : DecodeTraits<256, float>::TK;
}

size_t decodeSmem(const AttnArgs& a) {
  if (a.kvType == DType::BF16) return decodeMmaSmem(a.kDim);
  const int G = a.numHeads / a.numKvHeads;
  return a.kDim == 64 ? DecodeTraits<64, float>::smem(G)
                      : a.kDim == 128 ? DecodeTraits<128, float>::smem(G) : DecodeTraits<256, float>::smem(G);
}

// Launches the f32-page kernel; true when its last blocks merged the splits.
template <int D, typename KT>
bool launch(const Ctx& c, const AttnArgs& a, int splits, int chunk, float* partO, float* partLse,
            bool fused) {
  const int G = a.numHeads / a.numKvHeads;
  const size_t smem = DecodeTraits<D, KT>::smem(G);
  unsigned* counters = splitMergeCounters(c, splits, a.numTokens, a.numKvHeads, G, smem, fused);
  check(cudaFuncSetAttribute(decodeKernel<D, KT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(smem)), "attention (decode)");
  const dim3 grid(unsigned(splits), unsigned(a.numKvHeads), unsigned(a.numTokens));
  launchKernel(c, "attention (decode)", decodeKernel<D, KT>, grid, kThreads, smem, a, splits,
               chunk, partO, partLse, counters, c.err);
  return counters != nullptr;
}

}  // namespace

bool decodeSupported(const Ctx& c, const AttnArgs& a) {
  const int D = a.kDim;
  if (a.vDim != D || (D != 64 && D != 128 && D != 256)) return false;
  if (a.pageBytes % 16 != 0 || reinterpret_cast<uintptr_t>(a.arena) % 16 != 0) return false;
  return decodeSmem(a) <= c.maxSmem;
}

size_t decodeScratchBytes(const Ctx& c, const AttnArgs& a, int* splits) {
  const int TK = decodeTileKeys(a);
  const long long tiles = std::max(1LL, (static_cast<long long>(a.maxKeys) + TK - 1) / TK);
  // query heads per block of the tensor-core kernel (attn_decode_mma.cu)
  const long long hc = decodeMmaHeadsPerBlock(a.numHeads / a.numKvHeads);
  const bool mma = a.kvType == DType::BF16;
  const long long blocks = static_cast<long long>(a.numTokens) * (mma ? a.numHeads / hc : a.numKvHeads);
  // Splits so that the blocks fill whole waves (waveFillSplits), never more splits than tiles.
  // MIXATTN_CUDA_DECODE_SPLITS=N forces N (clamped to [1, min(tiles, 256)]): a benchmark knob,
  // to weigh per-block fixed costs against the wave fill.
  const long long slots = static_cast<long long>(c.numSMs) * (mma ? decodeMmaBlocksPerSM(a.kDim) : 2);
  static const long long forced = [] {
    const char* e = std::getenv("MIXATTN_CUDA_DECODE_SPLITS");
    return e ? std::atoll(e) : 0LL;
  }();
  const long long want = forced > 0 ? std::min({forced, tiles, 256LL})
                                    : waveFillSplits(blocks, slots, tiles);
  const long long chunkTiles = (tiles + want - 1) / want;
  *splits = int((tiles + chunkTiles - 1) / chunkTiles);
  if (*splits <= 1) return 0;
  return size_t(a.numTokens) * a.numHeads * *splits * (a.kDim + 1) * sizeof(float);
}

void attentionDecode(const Ctx& c, const AttnArgs& a, int splits, float* scratch, bool fused) {
  const int TK = decodeTileKeys(a), D = a.kDim;
  const long long tiles = std::max(1LL, (static_cast<long long>(a.maxKeys) + TK - 1) / TK);
  const int chunk = int((tiles + splits - 1) / splits) * TK;
  float* partO = scratch;
  float* partLse = splits > 1 ? scratch + size_t(a.numTokens) * a.numHeads * splits * D : nullptr;
  bool merged;
  if (a.kvType == DType::BF16) {
    const int hc = decodeMmaHeadsPerBlock(a.numHeads / a.numKvHeads);
    unsigned* counters = splitMergeCounters(c, splits, a.numTokens, a.numHeads / hc, hc,
                                            decodeMmaSmem(D), fused);
    attentionDecodeMma(c, a, splits, chunk, partO, partLse, counters);
    merged = counters != nullptr;
  } else if (D == 64) {
    merged = launch<64, float>(c, a, splits, chunk, partO, partLse, fused);
  } else if (D == 128) {
    merged = launch<128, float>(c, a, splits, chunk, partO, partLse, fused);
  } else {
    merged = launch<256, float>(c, a, splits, chunk, partO, partLse, fused);
  }
  if (splits > 1 && !merged)
    combineSplits(c, a.out, partO, partLse, size_t(a.numTokens) * a.numHeads, splits, D);
}

unsigned* splitMergeCounters(const Ctx& c, int splits, long long rows, long long groups, int nh,
                             size_t smem, bool fused) {
  if (!fused || splits <= 1 || !c.splitCounters) return nullptr;
  if (rows * groups > static_cast<long long>(c.numSplitCounters)) return nullptr;
  if (mergeSmemBytes(nh, splits) > smem) return nullptr;
  return c.splitCounters;
}

void combineSplits(const Ctx& c, void* out, const float* partO, const float* partLse,
                   size_t rows, int splits, int width) {
  const size_t smem = mergeSmemBytes(1, splits);  // <= 1 KB: splits <= 256
  launchKernel(c, "attention (decode combine)", combineKernel, unsigned(rows),
               width >= 128 ? 128 : 64, smem, static_cast<bf16*>(out), partO, partLse, splits,
               width);
}

}  // namespace cuda
}  // namespace mixattn
