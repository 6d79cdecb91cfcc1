// Prefill attention, FlashAttention-2 structure on tensor cores (included once per head dim
// by attn_prefill_{64,128,256}.cu, so each head dim compiles in its own translation unit).
//
// A block (CTA) owns BM "query vectors" of one sequence and one GQA group: R consecutive rows
// x HC query heads of the group (HC = the largest divisor of G not above BM, R = BM / HC), so
// every K/V tile it loads into shared memory serves all the heads of the group. NW warps; each
// warp owns MT m-tiles of 16 vectors (BM = 16 * MT * NW). Per key tile of BN keys a warp runs
// S = Q·Kᵀ and O += P·V as mma.sync m16n8k16 (bf16 in, fp32 accumulate): K fragments come
// from ldmatrix, V fragments from ldmatrix.trans, Q fragments either stay in registers for the
// whole block (QREG) or come from shared memory once per 16-wide k step (each K fragment then
// feeds MT m-tiles: FA2's layout, half the shared-memory traffic per mma at MT = 2). Softmax
// is online, in registers, in the exp2 domain with log2(e) folded into the score scale.
//
// Key tiles are aligned to multiples of BN and visited from the last (the diagonal) down to
// the first that holds a key of the block's first row's window: tiles wholly outside the
// causal band or the window are never visited, and only tiles that cross the diagonal or the
// window's lower edge are masked. K/V rows are fetched through the block table with
// cp.async.cg, two stages (the next tile's copies fly while this one is computed). Shared
// memory rows are XOR-swizzled in 16-byte chunks, so ldmatrix and cp.async are free of bank
// conflicts.
//
// WG configurations (sm_90a builds; elsewhere they run the mma.sync code): each warpgroup (4
// warps, 64 vectors) issues S = Q·Kᵀ and O += P·V as wgmma, A operands (Q, P) from registers,
// B (K, V) from shared memory in wgmma's 128-byte-swizzle layout. PIPE adds FlashAttention-3's
// overlap inside a warpgroup: S(n) and P·V(n−1) are issued together, softmax(n) runs while
// P·V(n−1) is still on the tensor cores, and the O rescale waits for it; S K/V stages (3 or 4)
// keep S − 2 tiles of prefetch in flight although a stage is released one tile later. Without
// PIPE the wgmma loop issues the next tile's copies right after this tile's S, so the page
// lookups and copy issue overlap the tensor cores (the kernels are issue-bound: the default,
// configuration 6 of head dim 128, runs three one-warpgroup blocks per SM).
#pragma once

#include <climits>
#include <cmath>
#include <type_traits>

#include "cuda/common.cuh"
#include "cuda/cp_async.cuh"
#include "cuda/wgmma.cuh"

namespace mixattn {
namespace cuda {

template <int D_, int NW, int MT, int BN_, bool QREG, int MINB, bool WG = false, bool PIPE = false,
          int STAGES = 3>
struct PrefillCfg {
  static constexpr int D = D_, BN = BN_, kWarps = NW, kMT = MT, kMinBlocks = MINB;
  static constexpr bool kQReg = QREG;
  // WG: on sm_90a builds both products run as warpgroup MMAs (wgmma) from the same registers
  // and tiles (NW/4 warpgroups of 64 vectors, Q in registers); elsewhere the mma.sync code
  // runs. Tiles then use the wgmma 128-byte-swizzle layout (wofs) instead of swz. PIPE: the
  // software-pipelined wgmma loop (three stages).
  static constexpr bool kWg = WG, kPipe = WG && PIPE;
  // Q in registers or (QREG false) read by each S = Q·Kᵀ wgmma from shared memory, which frees
  // 32 registers per thread for BN 128.
  static_assert(!WG || (NW % 4 == 0 && MT == 1 && D == 128 && (BN == 64 || BN == 128)),
                "the wgmma path: warpgroups of 64 vectors, head dim 128");
  static_assert(!WG || QREG || PIPE, "Q from shared memory: only in the pipelined wgmma loop");
  // PIPE: S stages hold S − 2 tiles of prefetch beyond the two being computed on (3 or 4).
  static constexpr int kStages = kPipe ? STAGES : 2;
  static_assert(!kPipe || STAGES == 3 || STAGES == 4, "the pipelined loop takes 3 or 4 stages");
  static constexpr int BM = NW * MT * 16;  // query vectors per block
  static constexpr int kThreads = NW * 32;
  static constexpr int CPR = D / 8;          // 16-byte chunks per row
  static constexpr int kStage = 2 * BN * D;  // elements of one stage: K tile, then V tile
  // With Q in registers its staging area is the last stage (free until it is first loaded).
  static constexpr bool kQAlias = QREG && BM <= 2 * BN;
  static constexpr size_t smem =
      size_t((kQAlias ? 0 : BM * D) + kStages * kStage) * sizeof(bf16) + (WG ? 1024 : 0);
  // K/V loads: each thread copies one 16-byte chunk column of RPT consecutive rows per tile.
  static constexpr int RS = kThreads / CPR;  // threads per chunk column
  static constexpr int RPT = BN / RS;        // consecutive rows per thread
  static_assert(kThreads % CPR == 0 && BN % RS == 0, "K/V tile chunks must divide among threads");
  // The loader's one-page path: RPT rows starting at a multiple of RPT lie in one page of a
  // power-of-two block size >= RPT only if RPT is a power of two.
  static_assert((RPT & (RPT - 1)) == 0, "rows per thread must be a power of two");
};

// Element offset of (row, 16-byte chunk) in a swizzled [rows][D] bf16 tile.
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}
// The same for wgmma's canonical 128-byte-swizzle layout: the tile is [D/64][ROWS][64] (column
// blocks of 64 elements, 128-byte rows), 16-byte chunk c of row r stored at chunk c ^ (r % 8)
// of its row (what the hardware's swizzle undoes, given 1024-byte aligned blocks).
template <int ROWS>
__device__ __forceinline__ int wofs(int row, int chunk) {
  return (chunk >> 3) * (ROWS * 64) + row * 64 + (((chunk & 7) ^ (row & 7)) << 3);
}

__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// P's A fragment for the 16-key step j, from a warp's S accumulators after the softmax: the
// m16n8k16 C layout of keys 16j..16j+15 is the A layout of P (rounded to bf16).
template <int NB>
__device__ __forceinline__ void packP(uint32_t (&p)[4], const float (&s)[NB][4], int j) {
  p[0] = packBf16(s[2 * j][0], s[2 * j][1]);
  p[1] = packBf16(s[2 * j][2], s[2 * j][3]);
  p[2] = packBf16(s[2 * j + 1][0], s[2 * j + 1][1]);
  p[3] = packBf16(s[2 * j + 1][2], s[2 * j + 1][3]);
}

template <class C>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks)
    prefillKernel(AttnArgs a, int HC, int R, DeviceError* err) {
  constexpr int D = C::D, BN = C::BN, BM = C::BM, MT = C::kMT, CPR = C::CPR;
  constexpr int NT = C::kThreads, RPT = C::RPT;
  constexpr bool QREG = C::kQReg, WG = C::kWg, kUseWg = C::kWg && MIXATTN_HAS_WGMMA;
  constexpr float kLog2e = 1.4426950408889634f;
  // Tile offsets of (row, chunk): Q tiles have BM rows, K/V tiles BN.
  auto qOfs = [](int row, int chunk) { return WG ? wofs<BM>(row, chunk) : swz<D>(row, chunk); };
  auto kvOfs = [](int row, int chunk) { return WG ? wofs<BN>(row, chunk) : swz<D>(row, chunk); };
  extern __shared__ __align__(128) unsigned char smemRaw[];
  // wgmma's swizzle atoms need 1024-byte alignment (the launch adds 1 KB of slack).
  unsigned char* smemBase =
      WG ? smemRaw + ((1024 - (smemAddr(smemRaw) & 1023)) & 1023) : smemRaw;
  bf16* sKV = reinterpret_cast<bf16*>(smemBase);  // [stages][K: BN x D, V: BN x D]
  bf16* sQ = sKV + (C::kQAlias ? C::kStages - 1 : C::kStages) * C::kStage;
  __shared__ int sPos[BM];

  int s = -1, tile = 0;  // the (sequence, row tile) this block owns
  if (!prefillTileOf(a, R, blockIdx.x, &s, &tile)) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int G = a.numHeads / a.numKvHeads, head0 = blockIdx.y * HC, g = head0 / G;
  const int r0 = tile * R, rows = min(R, a.numNew[s] - r0);
  const int pFirst = a.pastLen[s] + r0, pLast = pFirst + rows - 1;
  const int tok0 = a.tokenStart[s] + r0;
  const int kLo = keyLo(pFirst, a.window), kEnd = pLast + 1;  // keys any row reads
  const int loLast = keyLo(pLast, a.window);
  const int nFirst = kLo / BN, nLast = (kEnd - 1) / BN;

  // Q: vector i = (row i / HC, head i % HC); vectors past R*HC or past the rows are zeros.
  const bf16* q = static_cast<const bf16*>(a.q);
  for (int c = tid; c < BM * CPR; c += NT) {
    const int i = c / CPR, ch = c % CPR, r = i / HC;
    const bool ok = i < R * HC && r < rows;
    const bf16* src =
        ok ? q + ((size_t)(tok0 + r) * a.numHeads + head0 + i % HC) * D + ch * 8 : q;
    cpAsync16(sQ + qOfs(i, ch), src, ok);
  }
  if (tid < BM) sPos[tid] = (tid < R * HC && tid / HC < rows) ? pFirst + tid / HC : -1;

  // K/V tile n into a stage: this thread copies chunk `lch` of rows [lrow, lrow + RPT). Rows
  // outside [kLo, kEnd) are zero-filled without a read (their blocks may be gone); a bad page
  // is recorded and read as zeros (the step then fails at download). Where the block size is a
  // power of two ≥ RPT the RPT rows share one page: inside the key range they take one table
  // lookup and consecutive source rows (the common case, kept short: every thread runs it per
  // tile); otherwise one lookup per block the rows touch.
  const int lch = tid % CPR, lrow = (tid / CPR) * RPT;
  const size_t headOff = (size_t)g * a.blockSize * (D * sizeof(bf16)) + lch * 16;
  const size_t vDelta = (size_t)a.numKvHeads * a.blockSize * (D * sizeof(bf16));
  const bool rowsSharePage = a.bsShift >= 0 && (1 << a.bsShift) >= RPT;
  int dstOfs[RPT];  // shared-memory offsets of this thread's rows within a K (or V) tile
#pragma unroll
  for (int it = 0; it < RPT; ++it) dstOfs[it] = kvOfs(lrow + it, lch);
  auto loadKv = [&](int n, int stage) {
    bf16* k = sKV + stage * C::kStage;
    bf16* v = k + BN * D;
    const int key0 = n * BN + lrow;
    if (rowsSharePage && key0 >= kLo && key0 + RPT <= kEnd) {
      // Straight-line: one lookup, then per row two copies at constant offsets from the K and
      // V sources (this path was ~200 of a warp's ~500 instructions per tile with per-row
      // selects and 64-bit adds; the kernel is issue-bound).
      const int pg = lookupPagePow2(a, s, key0, err, kOpAttention);
      if (pg >= 0) {
        const char* kSrc = a.arena + (size_t)pg * a.pageBytes + headOff +
                           (size_t)(key0 & ((1 << a.bsShift) - 1)) * (D * sizeof(bf16));
        const char* vSrc = kSrc + vDelta;
        const uint32_t kDst = smemAddr(k), vDst = kDst + BN * D * sizeof(bf16);
#pragma unroll
        for (int it = 0; it < RPT; ++it) {
          cpAsync16To(kDst + dstOfs[it] * sizeof(bf16), kSrc + it * (D * sizeof(bf16)));
          cpAsync16To(vDst + dstOfs[it] * sizeof(bf16), vSrc + it * (D * sizeof(bf16)));
        }
      } else {
#pragma unroll
        for (int it = 0; it < RPT; ++it) {  // a bad page (recorded): zeros
          cpAsync16(k + dstOfs[it], a.arena, false);
          cpAsync16(v + dstOfs[it], a.arena, false);
        }
      }
    } else {
      int lastBlk = INT_MIN, pg = -1;
#pragma unroll
      for (int it = 0; it < RPT; ++it) {
        const int key = key0 + it;
        const bool in = key >= kLo && key < kEnd;
        if (in) {
          const int blk = a.bsShift >= 0 ? key >> a.bsShift : key / a.blockSize;
          if (blk != lastBlk) {
            pg = lookupPage(a, s, key, err, kOpAttention);
            lastBlk = blk;
          }
        }
        const bool ok = in && pg >= 0;
        const char* src = a.arena + (ok ? (size_t)pg * a.pageBytes + headOff +
                                              (size_t)blockOffset(a, key) * (D * sizeof(bf16))
                                        : 0);
        cpAsync16(k + dstOfs[it], src, ok);
        cpAsync16(v + dstOfs[it], ok ? src + vDelta : src, ok);
      }
    }
    cpAsyncCommit();
  };

  const int mi = lane / 8, ri = lane % 8;  // ldmatrix: which 8x8 matrix, which row of it
  const int t4 = lane % 4;

  loadKv(nLast, 0);  // commits Q's copies with the first tile
  cpAsyncWait<0>();
  if constexpr (kUseWg) fenceProxyAsync();  // the tile's cp.async writes, for wgmma
  __syncthreads();

  // This thread's vectors: m-tile t, half h -> vector (warp*MT + t)*16 + lane/4 + 8h, at
  // position sPos[vector] (-1 for padding), read again where a tile is masked.
  uint32_t qf[QREG ? MT : 1][QREG ? D / 16 : 1][4];
  if constexpr (QREG) {
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        ldmatrixX4(qf[t][kk], sQ + qOfs((warp * MT + t) * 16 + (mi & 1) * 8 + ri,
                                        2 * kk + (mi >> 1)));
    if constexpr (C::kQAlias) __syncthreads();  // stage 1 is overwritten next
  }

  float o[MT][D / 8][4];
#pragma unroll
  for (int t = 0; t < MT; ++t)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[t][i][0] = o[t][i][1] = o[t][i][2] = o[t][i][3] = 0.f;
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int t = 0; t < MT; ++t) m[t][0] = m[t][1] = -INFINITY, l[t][0] = l[t][1] = 0.f;
  const float qkScale = a.scale * kLog2e;
  const bool capped = a.softcap > 0.f;
  const float capIn = capped ? a.scale / a.softcap : 0.f, capOut = a.softcap * kLog2e;

  // Scores to the log2 domain, masked on edge tiles, then the online softmax update of this
  // thread's 2·MT vectors: P in sc, the factor O must be rescaled by in corr. Without a
  // soft-cap the scale is folded into the exponent (one FFMA per score: exp2(s·f − m·f)); the
  // soft-cap branch is taken once per tile, not per score, so the unrolled loops stay
  // straight-line code.
  auto softmaxTile = [&](float (&sc)[MT][BN / 8][4], int kStart, float (&corr)[MT][2]) {
    const bool mask = kStart + BN - 1 > pFirst || kStart < loLast;
    float f = qkScale;  // what turns a score in sc into the log2 domain
    if (capped) {
#pragma unroll
      for (int t = 0; t < MT; ++t)
#pragma unroll
        for (int i = 0; i < BN / 8; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) sc[t][i][e] = capOut * tanhf(sc[t][i][e] * capIn);
      f = 1.f;
    }
#pragma unroll
    for (int t = 0; t < MT; ++t) {
      if (mask) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int p = sPos[(warp * MT + t) * 16 + lane / 4 + 8 * h];
          const int lo = p < 0 ? INT_MAX : keyLo(p, a.window);  // padding: every key masked
#pragma unroll
          for (int i = 0; i < BN / 8; ++i)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int key = kStart + i * 8 + t4 * 2 + e;
              if (key < lo || key > p) sc[t][i][2 * h + e] = -INFINITY;
            }
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        // Max and sum as trees (independent pairs first): the row's 2·BN/8 scores as one
        // dependent chain cost a fixed-latency stall per score.
        float red[BN / 8];
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) red[i] = fmaxf(sc[t][i][2 * h], sc[t][i][2 * h + 1]);
#pragma unroll
        for (int w = BN / 16; w >= 1; w /= 2)
#pragma unroll
          for (int i = 0; i < w; ++i) red[i] = fmaxf(red[i], red[i + w]);
        float mx = red[0];
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mNew = fmaxf(m[t][h], mx * f);  // f > 0: the max commutes with it
        const float sub = mNew == -INFINITY ? 0.f : mNew;
        const float c = fastExp2(m[t][h] - sub);  // exp2(-inf) = 0 on the first tile
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
          sc[t][i][2 * h] = fastExp2(fmaf(sc[t][i][2 * h], f, -sub));
          sc[t][i][2 * h + 1] = fastExp2(fmaf(sc[t][i][2 * h + 1], f, -sub));
          red[i] = sc[t][i][2 * h] + sc[t][i][2 * h + 1];
        }
#pragma unroll
        for (int w = BN / 16; w >= 1; w /= 2)
#pragma unroll
          for (int i = 0; i < w; ++i) red[i] += red[i + w];
        const float sum = red[0];
        l[t][h] = l[t][h] * c + sum;  // per-thread partial; the quad is summed at the end
        m[t][h] = mNew;
        corr[t][h] = c;
      }
    }
  };
  // O *= corr, skipped where no row of the warp changed its max (corr = 1 exactly): after the
  // first tiles most rows' maxima stand.
  auto rescale = [&](const float (&corr)[MT][2]) {
    bool changed = false;
#pragma unroll
    for (int t = 0; t < MT; ++t) changed |= corr[t][0] != 1.f || corr[t][1] != 1.f;
    if (!__any_sync(0xffffffffu, changed)) return;
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
      for (int i = 0; i < D / 8; ++i)
        o[t][i][0] *= corr[t][0], o[t][i][1] *= corr[t][0], o[t][i][2] *= corr[t][1],
            o[t][i][3] *= corr[t][1];
  };

  // wgmma configurations: S = Q·Kᵀ of this warpgroup's 64 vectors into acc from stage st, one
  // commit group. K-major descriptors, k step kk 32 bytes into its 64-column block; Q from
  // registers or (the *SS forms) from its tile, this warpgroup's rows 64·128 bytes apart.
  const uint32_t qBase = smemAddr(sQ) + (warp / 4) * (64 * 128);
  auto issueS = [&](auto& acc, int st) {  // generic: instantiated by the wgmma loops only
    const uint32_t kBase = smemAddr(sKV + st * C::kStage);
    wgPin(acc);
    wgFence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t desc = wgDesc(kBase + (kk >> 2) * (BN * 128) + (kk & 3) * 32, 16, 1024);
      if constexpr (QREG) {
        if constexpr (BN == 64) wgmmaN64K(acc, qf[0][kk], desc, kk > 0);
        else wgmmaN128K(acc, qf[0][kk], desc, kk > 0);
      } else {
        const uint64_t qd = wgDesc(qBase + (kk >> 2) * (BM * 128) + (kk & 3) * 32, 16, 1024);
        if constexpr (BN == 64) wgmmaN64KSS(acc, qd, desc, kk > 0);
        else wgmmaN128KSS(acc, qd, desc, kk > 0);
      }
    }
    wgCommit();
  };

  if constexpr (C::kPipe && kUseWg) {
    // Iteration it: tile n = nLast − it in stage it % S. After one barrier (tile it landed;
    // every warpgroup is past P·V(it−2)) S(it) and P·V(it−1) are issued together, then the
    // copies of tile it+S−2 go into tile it−2's stage while they run (page lookups and
    // cp.async issue off the tensor cores' critical path), softmax(it) overlaps P·V(it−1),
    // and the O rescale waits for it. S − 2 tiles of prefetch stay in flight.
    constexpr int S = C::kStages;
    const int T = nLast - nFirst + 1;
    for (int j = 1; j <= S - 3 && j < T; ++j) loadKv(nLast - j, j);
    float sc[1][BN / 8][4];
    uint32_t pa[BN / 16][4];
    int stage = 0, prev = 0;
    auto issuePv = [&](int st) {
      const uint32_t vBase = smemAddr(sKV + st * C::kStage + BN * D);
#pragma unroll
      for (int j = 0; j < BN / 16; ++j)
        wgmmaN128T(o[0], pa[j], wgDesc(vBase + j * 2048, BN * 128, 1024), 1);
      wgCommit();
    };
    // One iteration; the first (no P·V yet) is peeled so that every wgmma issue and wait in
    // the loop is unconditional (ptxas serialises the wgmmas otherwise: warning C7514).
    auto iteration = [&](int it, auto first) {
      constexpr bool kFirst = decltype(first)::value;
      const int n = nLast - it;
      if constexpr (!kFirst) {
        // Copies committed after tile it's: min(S − 3, T − 1 − it) (wait_group takes a constant).
        if (S >= 4 && it + 1 < T) cpAsyncWait<(S >= 4 ? 1 : 0)>();
        else cpAsyncWait<0>();
        fenceProxyAsync();
        __syncthreads();
      }
      wgPin(o[0]);
      issueS(sc[0], stage);
      if constexpr (!kFirst) issuePv(prev);
      if (it + S - 2 < T) loadKv(n - (S - 2), (it + S - 2) % S);  // tile it−2's stage
      if constexpr (kFirst) wgWait0();
      else wgWait1();  // S(it) is done; P·V(it−1) may still run
      wgPin(sc[0]);
      float corr[1][2];
      softmaxTile(sc, n * BN, corr);
      wgWait0();
      wgPin(o[0]);
      rescale(corr);
#pragma unroll
      for (int j = 0; j < BN / 16; ++j) {
        packP(pa[j], sc[0], j);
      }
      prev = stage;
      stage = stage == S - 1 ? 0 : stage + 1;
    };
    iteration(0, std::true_type{});
    for (int it = 1; it < T; ++it) iteration(it, std::false_type{});
    wgPin(o[0]);
    wgFence();
    issuePv(prev);
    wgWait0();
    wgPin(o[0]);
  } else {
  int stage = 0;
  for (int n = nLast; n >= nFirst; --n, stage ^= 1) {
    // mma.sync: the next tile's copies first; wgmma: after this tile's S is issued (below), so
    // the page lookups and cp.async issue overlap the tensor cores.
    if constexpr (kUseWg) {
      cpAsyncWait<0>();
    } else if (n > nFirst) {
      loadKv(n - 1, stage ^ 1);
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    if constexpr (kUseWg) fenceProxyAsync();  // the tile's cp.async writes, for wgmma
    __syncthreads();
    const bf16* k = sKV + stage * C::kStage;
    const bf16* v = k + BN * D;
    const int kStart = n * BN;

    // S = Q · Kᵀ: MT x 16 vectors x BN keys per warp; each K fragment feeds every m-tile.
    float sc[MT][BN / 8][4];
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) sc[t][i][0] = sc[t][i][1] = sc[t][i][2] = sc[t][i][3] = 0.f;
    if constexpr (kUseWg) {
      issueS(sc[0], stage);
      if (n > nFirst) loadKv(n - 1, stage ^ 1);  // its stage was released by the last barrier
      wgWait0();
      wgPin(sc[0]);
    } else {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[QREG ? 1 : MT][4];
      if constexpr (!QREG) {
#pragma unroll
        for (int t = 0; t < MT; ++t)
          ldmatrixX4(qa[t], sQ + qOfs((warp * MT + t) * 16 + (mi & 1) * 8 + ri,
                                      2 * kk + (mi >> 1)));
      }
#pragma unroll
      for (int nb = 0; nb < BN / 16; ++nb) {
        uint32_t kb[4];
        ldmatrixX4(kb, k + kvOfs(nb * 16 + (mi >> 1) * 8 + ri, 2 * kk + (mi & 1)));
#pragma unroll
        for (int t = 0; t < MT; ++t) {
          if constexpr (QREG) {
            mmaBf16(sc[t][2 * nb], qf[t][kk], kb[0], kb[1]);
            mmaBf16(sc[t][2 * nb + 1], qf[t][kk], kb[2], kb[3]);
          } else {
            mmaBf16(sc[t][2 * nb], qa[t], kb[0], kb[1]);
            mmaBf16(sc[t][2 * nb + 1], qa[t], kb[2], kb[3]);
          }
        }
      }
    }
    }

    {
      float corr[MT][2];
      softmaxTile(sc, kStart, corr);
      rescale(corr);
    }

    // O += P · V: the S accumulators are already laid out as the A fragments of P; each V
    // fragment feeds every m-tile.
    if constexpr (kUseWg) {
      // V tile as B, MN-major: 64-column blocks BN*128 bytes apart (LBO), 8-key groups 1024
      // bytes apart (SBO); k step j (16 keys) starts 2048 bytes further.
      const uint32_t vBase = smemAddr(v);
      uint32_t pa[BN / 16][4];
#pragma unroll
      for (int j = 0; j < BN / 16; ++j) {
        packP(pa[j], sc[0], j);
      }
      wgPin(o[0]);
      wgFence();
#pragma unroll
      for (int j = 0; j < BN / 16; ++j) {
        const uint64_t desc = wgDesc(vBase + j * 2048, BN * 128, 1024);
        if constexpr (D == 64) wgmmaN64T(o[0], pa[j], desc, 1);
        else wgmmaN128T(o[0], pa[j], desc, 1);
      }
      wgCommit();
      wgWait0();
      wgPin(o[0]);
    } else {
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      uint32_t pa[MT][4];
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        packP(pa[t], sc[t], j);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldmatrixX4Trans(vb, v + kvOfs(j * 16 + (mi & 1) * 8 + ri, 2 * dp + (mi >> 1)));
#pragma unroll
        for (int t = 0; t < MT; ++t) {
          mmaBf16(o[t][2 * dp], pa[t], vb[0], vb[1]);
          mmaBf16(o[t][2 * dp + 1], pa[t], vb[2], vb[3]);
        }
      }
    }
    }
    __syncthreads();  // the next iteration's loads overwrite the other stage
  }
  }

  // Normalise and store (bf16x2 per thread per 8-column tile).
  bf16* out = static_cast<bf16*>(a.out);
#pragma unroll
  for (int t = 0; t < MT; ++t)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = l[t][h];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int vq = (warp * MT + t) * 16 + lane / 4 + 8 * h;
      if (sPos[vq] < 0) continue;  // padding vector
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      bf16* dst = out + ((size_t)(tok0 + vq / HC) * a.numHeads + head0 + vq % HC) * D + t4 * 2;
#pragma unroll
      for (int i = 0; i < D / 8; ++i)
        *reinterpret_cast<__nv_bfloat162*>(dst + i * 8) =
            __floats2bfloat162_rn(o[t][i][2 * h] * inv, o[t][i][2 * h + 1] * inv);
    }
}

// The host side of one configuration: grid, shared memory, launch.
template <class C>
void launchPrefill(const Ctx& c, const AttnArgs& a) {
  const int G = a.numHeads / a.numKvHeads;
  int HC = 1;
  for (int d = 1; d <= G && d <= C::BM; ++d)
    if (G % d == 0) HC = d;
  const int R = C::BM / HC;
  const unsigned items = unsigned((a.numTokens + R - 1) / R + a.numSeqs);
  const dim3 grid(items, unsigned(a.numHeads / HC));
  check(cudaFuncSetAttribute(prefillKernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(C::smem)), "attention (prefill)");
  prefillKernel<C><<<grid, C::kThreads, C::smem, c.stream>>>(a, HC, R, c.err);
  checkLaunch("attention (prefill)");
}

}  // namespace cuda
}  // namespace mixattn
