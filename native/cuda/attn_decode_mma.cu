// Paged split-KV decode on tensor cores (bf16 pages, head dims 64/128/256).
//
// A block handles one (row, group of HC query heads of one KV head, split). The HC <= 16
// query vectors (zero-padded) are the M = 16 rows of mma.sync m16n8k16; K/V tiles of 64 keys
// come through the block table with cp.async, 2 stages deep, and each of the 4
// warps takes 16 keys of every tile with its own online softmax state, so the warps never
// wait on each other inside a tile. Their states are merged once at the end through shared
// memory. Decode is bound by K/V bytes: the tensor cores only keep the arithmetic (and its
// shared-memory traffic) far below the memory time, which scalar FMAs did not (the scalar
// kernel in attn_decode.cu stays for f32 pages). With several splits, the last block of each
// (row, head group) to finish merges them (split_merge.cuh).
#include <climits>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/cp_async.cuh"
#include "cuda/split_merge.cuh"

namespace mixattn {
namespace cuda {

namespace {

template <int D>
struct DecMma {
  static constexpr int kThreads = 128, kWarps = 4;
  static constexpr int BN = 64;  // keys per tile, 16 per warp
  // Two stages: 64 KB at d128, so 3 blocks (12 warps) fit on an SM; the profile of the
  // 3-stage version showed too few eligible warps, not too few bytes in flight.
  static constexpr int kStages = 2;
  static constexpr int CPR = D / 8;  // 16-byte chunks per row
  static constexpr size_t stageElems = size_t(2) * BN * D;  // K then V
  static constexpr size_t smem = (size_t(16) * D + kStages * stageElems) * sizeof(bf16);
  static_assert(size_t(kWarps) * 16 * (D + 2) * sizeof(float) <= kStages * stageElems * sizeof(bf16),
                "the merge buffers must fit in the stages");
};

template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Copies rows [key0, key0 + RPT) of a tile (chunk lch of KV head g; smem rows lrow...) one
// block lookup at a time: a split's edge rows (keys outside [kBeg, kEnd) become zeros, and
// skipKey is left alone), blocks smaller than RPT, and a bad page (recorded; zeros). Out of
// line: rare, and the kernel's blocks are short-lived and fetch their code cold, so the hot
// path is kept compact.
template <int D, int RPT>
static __device__ __noinline__ void copyRowsPerRow(const AttnArgs& a, int s, int g, int key0,
                                                   int kBeg, int kEnd, int skipKey, int lrow,
                                                   int lch, bf16* k, bf16* v, DeviceError* err) {
  int lastBlk = INT_MIN, page = -1;
  for (int it = 0; it < RPT; ++it) {
    const int key = key0 + it;
    if (key == skipKey) continue;  // the fused append's new row: written from registers
    const bool in = key >= kBeg && key < kEnd;
    if (in) {
      const int blk = a.bsShift >= 0 ? key >> a.bsShift : key / a.blockSize;
      if (blk != lastBlk) page = lookupPage(a, s, key, err, kOpAttention), lastBlk = blk;
    }
    const bool ok = in && page >= 0;
    const char* base = a.arena + (ok ? (size_t)page * a.pageBytes : 0);
    const int off = ok ? blockOffset(a, key) : 0;
    cpAsync16(k + swz<D>(lrow + it, lch), base + kOffset(a, g, off, sizeof(bf16)) + lch * 16, ok);
    cpAsync16(v + swz<D>(lrow + it, lch), base + vOffset(a, g, off, sizeof(bf16)) + lch * 16, ok);
  }
}

// The fused append's new row (chunk d0 of key p's K and V rows for one KV head): k rotated
// (the arithmetic of ops_rope_kv.cu's ropePair, so the page gets the bits ropeAppendKv would
// write) and v as it is, into the tile's shared memory and, where kPage is set, the page.
template <int D>
static __device__ __noinline__ void appendNewRow(const bf16* kRow, const bf16* vRow, int d0,
                                                 bf16* kDst, bf16* vDst, bf16* kPage,
                                                 bf16* vPage, const float* ropeCos,
                                                 const float* ropeSin) {
  constexpr int half = D / 2;
  const int partner = d0 < half ? d0 + half : d0 - half;
  const uint4 xu = *reinterpret_cast<const uint4*>(kRow + d0);
  const uint4 pu = *reinterpret_cast<const uint4*>(kRow + partner);
  const uint4 vu = *reinterpret_cast<const uint4*>(vRow + d0);
  const bf16* x = reinterpret_cast<const bf16*>(&xu);
  const bf16* xp = reinterpret_cast<const bf16*>(&pu);
  uint4 yu;
  bf16* y = reinterpret_cast<bf16*>(&yu);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int f = (d0 + j) % half;
    const float cf = ropeCos[f], sf = ropeSin[f];
    y[j] = d0 < half ? fromF<bf16>(fmaf(toF(x[j]), cf, -(toF(xp[j]) * sf)))
                     : fromF<bf16>(fmaf(toF(x[j]), cf, toF(xp[j]) * sf));
  }
  *reinterpret_cast<uint4*>(kDst) = yu;
  *reinterpret_cast<uint4*>(vDst) = vu;
  if (kPage) {
    *reinterpret_cast<uint4*>(kPage + d0) = yu;
    *reinterpret_cast<uint4*>(vPage + d0) = vu;
  }
}

// cos/sin of pos·invFreq[i] for i < n (double angles, as ops_rope_kv.cu computes them), the
// block's threads sharing the work. Out of line: double sincos is long code, run once.
static __device__ __noinline__ void ropeAngles(double pos, const double* invFreq, int n,
                                               float* cosOut, float* sinOut) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    double sn, cs;
    sincos(pos * invFreq[i], &sn, &cs);
    cosOut[i] = float(cs), sinOut[i] = float(sn);
  }
}

template <int D>
__global__ void __launch_bounds__(128, D <= 128 ? 3 : 1)  // 3 blocks per SM fit the smem at d128
    decodeMmaKernel(const __grid_constant__ AttnArgs a, int HC, int splits, int chunk, float* partO, float* partLse,
                    unsigned* counters, DeviceError* err) {
  using Tr = DecMma<D>;
  constexpr int BN = Tr::BN, CPR = Tr::CPR, ST = Tr::kStages;
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;
  extern __shared__ __align__(128) unsigned char smemRaw[];
  bf16* sQ = reinterpret_cast<bf16*>(smemRaw);
  bf16* sKV = sQ + 16 * D;
  const int sp = blockIdx.x, t = blockIdx.z, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int head0 = blockIdx.y * HC, g = head0 / (a.numHeads / a.numKvHeads);
  const size_t rowHead = (size_t)t * a.numHeads + head0;
  gridDepLaunchDependents();

  // Before gridDepWait (programmatic dependent launch, launch.cuh) this kernel reads only what
  // no earlier op of the step writes: the step's metadata and block tables (uploaded before
  // its first kernel) and K/V rows of keys below pastLen[s] (written by earlier steps; the
  // step's appends write rows at pastLen[s] and above, and pages are never copied on the
  // device). So the first tiles' page lookups and copies overlap the kernels before this one;
  // q, the new rows and every write wait.
  const int s = a.seqOfToken[t];
  int kBeg, kEnd;
  splitKeyRange(a, t, sp, splits, chunk, tid, err, &kBeg, &kEnd);
  // The fused append (AttnArgs::newK): the row's new key p is not in the pages yet; its tile
  // takes it from registers (appendNewRow), and the RoPE angles of p (q's and the key's) are
  // computed here, before the wait (they need only the metadata).
  const bool fusedAppend = a.newK != nullptr;
  const int pNew = fusedAppend ? a.positions[t] : -1;
  __shared__ float ropeCos[D / 2], ropeSin[D / 2];
  if (fusedAppend) ropeAngles(double(pNew), a.ropeInvFreq, D / 2, ropeCos, ropeSin);
  const int copyEnd = fusedAppend ? min(kEnd, pNew) : kEnd;  // keys copied from the pages
  // Where the new row goes: written by the first head group of its KV head, in the split that
  // holds key p (its page looked up here: tables are uploaded before the step).
  bf16* newKPage = nullptr;
  if (fusedAppend && pNew >= kBeg && pNew < kEnd && head0 % (a.numHeads / a.numKvHeads) == 0) {
    const int page = lookupPage(a, s, pNew, err, kOpAppendKv);
    if (page >= 0)
      newKPage = reinterpret_cast<bf16*>(const_cast<char*>(a.arena) + (size_t)page * a.pageBytes +
                                         kOffset(a, g, blockOffset(a, pNew), sizeof(bf16)));
  }
  // An empty split (or a bad row) runs no tile and ends like the others: its warps' states
  // are empty, so it writes zeros (or an empty partial) and takes part in the merge.

  // Tiles sit on the 64-key grid from kBase (keys outside [kBeg, kEnd) are masked), so each
  // thread's RPT consecutive rows of a tile share one page wherever the block size is a power
  // of two >= RPT: one table read per thread per tile. Why: a lookup per copied row was 16
  // dependent table reads per thread for two tiles, and the batch-1 step's decode kernel spent
  // ~22 µs per layer, mostly waiting on them (the split count that gave blocks more tiles made
  // it slower still).
  constexpr int RPT = BN * CPR / Tr::kThreads;
  const int kBase = kBeg & ~(BN - 1);
  const int nTiles = kBeg < kEnd ? (kEnd - kBase + BN - 1) / BN : 0;
  const int lch = tid % CPR, lrow = (tid / CPR) * RPT;
  // Byte offsets of this thread's rows within a stage's K tile (the same for every tile).
  uint32_t dstOfs[RPT];
#pragma unroll
  for (int it = 0; it < RPT; ++it) dstOfs[it] = swz<D>(lrow + it, lch) * sizeof(bf16);
  const size_t rowBytes = D * sizeof(bf16);
  const size_t headOff = (size_t)g * a.blockSize * rowBytes + lch * 16;
  const size_t vDelta = (size_t)a.numKvHeads * a.blockSize * rowBytes;
  const bool rowsSharePage = a.bsShift >= 0 && (1 << a.bsShift) >= RPT;
  constexpr int kPerRow = -2;  // "this tile's rows need the per-row path"
  // The page of this thread's rows of tile n: a plain table read (tablePage), no calls, so the
  // reads of several tiles issue together; kPerRow at the range's edges, -1 for a bad page
  // (copyTile sends both the per-row way, which records a bad page).
  auto pageOfRows = [&](int n) -> int {
    const int key0 = kBase + n * BN + lrow;
    if (!rowsSharePage || key0 < kBeg || key0 + RPT > copyEnd) return kPerRow;
    return tablePage(a, s, key0 >> a.bsShift);
  };
  auto copyTile = [&](int n, int pg) {
    bf16* k = sKV + (n % ST) * Tr::stageElems;
    bf16* v = k + BN * D;
    const int key0 = kBase + n * BN + lrow;
    if (pg >= 0) {
      const char* kSrc = a.arena + (size_t)pg * a.pageBytes + headOff +
                         (size_t)(key0 & ((1 << a.bsShift) - 1)) * rowBytes;
      const char* vSrc = kSrc + vDelta;
      const uint32_t kDst = smemAddr(k), vDst = kDst + BN * D * sizeof(bf16);
#pragma unroll
      for (int it = 0; it < RPT; ++it) {
        cpAsync16To(kDst + dstOfs[it], kSrc + it * rowBytes);
        cpAsync16To(vDst + dstOfs[it], vSrc + it * rowBytes);
      }
    } else {
      // Key p is left alone only by the split that writes it below; a split whose last tile
      // reaches past its range into p's (a window's unaligned start) zero-fills it like any
      // key outside its range (a row left unwritten could hold NaNs from earlier use, and
      // P·V would turn its zero probabilities into NaN).
      const bool writesNew = pNew >= kBeg && pNew < kEnd;
      copyRowsPerRow<D, RPT>(a, s, g, key0, kBeg, copyEnd, writesNew ? pNew : -1, lrow, lch, k,
                             v, err);
    }
    if (pNew >= key0 && pNew < key0 + RPT && pNew >= kBeg && pNew < kEnd) {
      const int row = lrow + (pNew - key0);
      const size_t kv = ((size_t)t * a.numKvHeads + g) * D;
      appendNewRow<D>(static_cast<const bf16*>(a.newK) + kv, static_cast<const bf16*>(a.newV) + kv,
                      lch * 8, k + swz<D>(row, lch), v + swz<D>(row, lch), newKPage,
                      newKPage ? newKPage + vDelta / sizeof(bf16) : nullptr, ropeCos, ropeSin);
    }
  };

  // Group 0 of the cp.async queue holds Q and tile 0, and tile 1 where it was copied before the
  // wait (tiles wholly below pastLen[s], both stages being free); group k ≥ 1 holds tile k
  // otherwise (empty groups past the end keep the count).
  static_assert(ST == 2, "the early copies assume two stages");
  const int stable = min(kEnd, s >= 0 && s < a.numSeqs ? a.pastLen[s] : 0);  // keys before the step
  int early = 0;  // leading tiles copied before the wait
  while (early < ST && early < nTiles && kBase + (early + 1) * BN <= stable) ++early;
  {
    // Both tables read first (independent loads), then one copyTile in a loop (code size).
    const int pg0 = early > 0 ? pageOfRows(0) : kPerRow, pg1 = early > 1 ? pageOfRows(1) : kPerRow;
#pragma unroll 1
    for (int n = 0; n < early; ++n) copyTile(n, n == 0 ? pg0 : pg1);
  }
  gridDepWait();
  if (fusedAppend) __syncthreads();  // the angles, before any thread reads them
  const bf16* q = static_cast<const bf16*>(a.q) + rowHead * D;
  for (int c = tid; c < 16 * CPR; c += Tr::kThreads) {
    const int r = c / CPR, ch = c % CPR;
    cpAsync16(sQ + swz<D>(r, ch), r < HC ? q + (size_t)r * D + ch * 8 : q, r < HC);
  }
  if (early == 0 && nTiles > 0) copyTile(0, pageOfRows(0));
  cpAsyncCommit();
  // The page of the next tile the loop copies (the first is tile max(early, 1)), read one
  // iteration ahead of its copies.
  const int firstInLoop = max(early, 1);
  int pgNext = firstInLoop < nTiles ? pageOfRows(firstInLoop) : kPerRow;

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int mi = lane / 8, ri = lane % 8, t4 = lane % 4;

  for (int n = 0; n < nTiles; ++n) {
    if (n + 1 < nTiles && n + 1 >= early) {
      copyTile(n + 1, pgNext);
      pgNext = n + 2 < nTiles ? pageOfRows(n + 2) : kPerRow;
    }
    cpAsyncCommit();
    cpAsyncWait<ST - 1>();
    __syncthreads();
    if (fusedAppend && n == 0) {  // q has landed (group 0): rotate it as ropeQAppendKv would
      constexpr int half = D / 2;
      for (int e = tid; e < HC * half; e += Tr::kThreads) {
        const int r = e / half, i = e % half;
        bf16* lo = sQ + swz<D>(r, i / 8) + i % 8;
        bf16* hi = sQ + swz<D>(r, (i + half) / 8) + i % 8;
        const float x0 = toF(*lo), x1 = toF(*hi), cf = ropeCos[i], sf = ropeSin[i];
        *lo = fromF<bf16>(fmaf(x0, cf, -(x1 * sf)));
        *hi = fromF<bf16>(fmaf(x1, cf, x0 * sf));
      }
      __syncthreads();
    }
    const bf16* k = sKV + (n % ST) * Tr::stageElems;
    const bf16* v = k + BN * D;
    const int kw = warp * 16;  // this warp's keys in the tile

    float sc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4], kb[4];
      ldmatrixX4(qa, sQ + swz<D>((mi & 1) * 8 + ri, 2 * kk + (mi >> 1)));
      ldmatrixX4(kb, k + swz<D>(kw + (mi >> 1) * 8 + ri, 2 * kk + (mi & 1)));
      mmaBf16(sc[0], qa, kb[0], kb[1]);
      mmaBf16(sc[1], qa, kb[2], kb[3]);
    }
    const int kStart = kBase + n * BN + kw;
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = kStart + i * 8 + t4 * 2 + (e & 1);
        const bool ok = key >= kBeg && key < kEnd;
        sc[i][e] = ok ? capScore(sc[i][e], a.scale, a.softcap) * kLog2e : -INFINITY;
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = fmaxf(fmaxf(sc[0][2 * h], sc[0][2 * h + 1]), fmaxf(sc[1][2 * h], sc[1][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mNew = fmaxf(m[h], mx);
      const float corr = mNew == -INFINITY ? 1.f : exp2f(m[h] - mNew);
      const float sub = mNew == -INFINITY ? 0.f : mNew;
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        sc[i][2 * h] = exp2f(sc[i][2 * h] - sub);
        sc[i][2 * h + 1] = exp2f(sc[i][2 * h + 1] - sub);
        sum += sc[i][2 * h] + sc[i][2 * h + 1];
      }
      l[h] = l[h] * corr + sum;
      m[h] = mNew;
      // After the first tiles the running max rarely moves: skip the D/2 multiplies then.
      if (__any_sync(0xffffffffu, corr != 1.f)) {
#pragma unroll
        for (int i = 0; i < D / 8; ++i) o[i][2 * h] *= corr, o[i][2 * h + 1] *= corr;
      }
    }
    const uint32_t pa[4] = {packBf16(sc[0][0], sc[0][1]), packBf16(sc[0][2], sc[0][3]),
                            packBf16(sc[1][0], sc[1][1]), packBf16(sc[1][2], sc[1][3])};
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t vb[4];
      ldmatrixX4Trans(vb, v + swz<D>(kw + (mi & 1) * 8 + ri, 2 * dp + (mi >> 1)));
      mmaBf16(o[2 * dp], pa, vb[0], vb[1]);
      mmaBf16(o[2 * dp + 1], pa, vb[2], vb[3]);
    }
    __syncthreads();  // the next iteration's load overwrites a stage read here
  }
  cpAsyncWait<0>();  // (only empty groups can be pending)

  // Merge the 4 warps' states: O as [warp][16][D] floats, then (m, l) as [warp][16][2].
  float* sO = reinterpret_cast<float*>(sKV);
  float* sML = sO + Tr::kWarps * 16 * D;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = lane / 4 + 8 * h;
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (t4 == 0) {
      sML[(warp * 16 + r) * 2] = m[h];
      sML[(warp * 16 + r) * 2 + 1] = sum;
    }
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      sO[(warp * 16 + r) * D + i * 8 + t4 * 2] = o[i][2 * h];
      sO[(warp * 16 + r) * D + i * 8 + t4 * 2 + 1] = o[i][2 * h + 1];
    }
  }
  __syncthreads();
  for (int e = tid; e < HC * D; e += Tr::kThreads) {
    const int r = e / D, d = e % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < Tr::kWarps; ++w) M = fmaxf(M, sML[(w * 16 + r) * 2]);
    float L = 0.f, acc = 0.f;
    if (M != -INFINITY) {
#pragma unroll
      for (int w = 0; w < Tr::kWarps; ++w) {
        const float mw = sML[(w * 16 + r) * 2];
        const float f = mw == -INFINITY ? 0.f : exp2f(mw - M);
        L += f * sML[(w * 16 + r) * 2 + 1];
        acc += f * sO[(w * 16 + r) * D + d];
      }
    }
    const float val = L > 0.f ? acc / L : 0.f;
    if (splits == 1) {
      static_cast<bf16*>(a.out)[(rowHead + r) * D + d] = fromF<bf16>(val);
    } else {
      partO[((rowHead + r) * splits + sp) * D + d] = val;
      if (d == 0) partLse[(rowHead + r) * splits + sp] = L > 0.f ? M * kLn2 + logf(L) : -INFINITY;
    }
  }
  if (splits > 1)
    mergeIfLastSplit(counters, static_cast<bf16*>(a.out), partO, partLse, splits, HC, D, rowHead,
                     reinterpret_cast<float*>(smemRaw));
}

template <int D>
void launch(const Ctx& c, const AttnArgs& a, int splits, int chunk, float* partO, float* partLse,
            unsigned* counters) {
  const int HC = decodeMmaHeadsPerBlock(a.numHeads / a.numKvHeads);
  check(cudaFuncSetAttribute(decodeMmaKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(DecMma<D>::smem)), "attention (decode)");
  const dim3 grid(unsigned(splits), unsigned(a.numHeads / HC), unsigned(a.numTokens));
  launchKernel(c, "attention (decode)", decodeMmaKernel<D>, grid, DecMma<D>::kThreads,
               DecMma<D>::smem, a, HC, splits, chunk, partO, partLse, counters, c.err);
}

}  // namespace

template <int D>
int blocksPerSM() {
  static int n = 0;  // per process: one device kind
  if (n == 0) {
    check(cudaFuncSetAttribute(decodeMmaKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(DecMma<D>::smem)), "attention (decode)");
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decodeMmaKernel<D>, DecMma<D>::kThreads,
                                                        DecMma<D>::smem), "attention (decode)");
    n = n < 1 ? 1 : n;
  }
  return n;
}

int decodeMmaHeadsPerBlock(int G) {
  int hc = 1;
  for (int d = 1; d <= G && d <= 16; ++d)
    if (G % d == 0) hc = d;
  return hc;
}

int decodeMmaBlocksPerSM(int D) {
  return D == 64 ? blocksPerSM<64>() : D == 128 ? blocksPerSM<128>() : blocksPerSM<256>();
}

size_t decodeMmaSmem(int D) {
  return D == 64 ? DecMma<64>::smem : D == 128 ? DecMma<128>::smem : DecMma<256>::smem;
}

void attentionDecodeMma(const Ctx& c, const AttnArgs& a, int splits, int chunk, float* partO,
                        float* partLse, unsigned* counters) {
  if (a.kDim == 64) launch<64>(c, a, splits, chunk, partO, partLse, counters);
  else if (a.kDim == 128) launch<128>(c, a, splits, chunk, partO, partLse, counters);
  else launch<256>(c, a, splits, chunk, partO, partLse, counters);
}

}  // namespace cuda
}  // namespace mixattn
