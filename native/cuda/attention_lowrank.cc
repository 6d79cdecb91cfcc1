// Host side of the low-rank attention kernels (attn_lowrank.cuh): validation, the plan
// (layout, head groups, split-KV) and the launch, for attentionLowRankKeys and for
// attention() with V narrower than K.
//
// Layout: prefill (64 query vectors per block, the expanded tile shared by all of them) when
// some sequence brings more than one row, decode (one row, <= 8 heads, warps splitting the
// keys) otherwise; setAttentionPath's "decode" / "prefill" force one. Splits: as the decode
// path (attn_decode.cu) chooses them, so the blocks fill whole waves of the GPU; the prefill
// layout splits only when its blocks alone do not fill one wave. The decode layout merges its
// splits in its last blocks (split_merge.cuh) where it can; the combine kernel does the rest.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "common/paged_kv_check.h"
#include "cuda/attention.h"
#include "cuda/lowrank_layout.h"

namespace mixattn {
namespace cuda {

namespace {

int largestDivisor(int n, int cap) {
  int best = 1;
  for (int d = 1; d <= n && d <= cap; ++d)
    if (n % d == 0) best = d;
  return best;
}

bool headDimSupported(int d) { return d == 64 || d == 128 || d == 256; }

// Resident blocks per SM of a plan's kernel (occupancy API), cached per kernel and size.
int blocksPerSM(int D, const AttnArgs& a, const LowRankPlan& p) {
  static std::mutex mu;
  static std::map<std::tuple<int, bool, bool, int, size_t>, int> cache;
  const auto key = std::make_tuple(D, p.prefill, p.expand, int(a.kvType), p.smem);  // smem fixes stages
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const int n = D == 64 ? lowRankBlocksPerSM64(a, p)
                : D == 128 ? lowRankBlocksPerSM128(a, p) : lowRankBlocksPerSM256(a, p);
  return cache[key] = n;
}

// Shared memory of a layout: two stages where they fit, else one; 0 when neither does.
size_t layoutSmem(const Ctx& c, int D, bool prefill, bool expand, const AttnArgs& a, int* stages) {
  for (int st = 2; st >= 1; --st) {
    const size_t bytes = LrSmem(D, prefill, expand, a.kDim, a.vDim, st).total;
    if (bytes <= c.maxSmem) {
      *stages = st;
      return bytes;
    }
  }
  return 0;
}

// Plans and launches (a's out/q/numHeads/window/scale/softcap/maxKeys are set). The prefill
// layout falls back to the decode one where it does not fit, unless it was forced.
void run(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, int D, bool expand,
         bool prefill, bool forced, const std::function<float*(size_t)>& scratch,
         const char* opName) {
  LowRankPlan p{};
  p.smem = layoutSmem(c, D, prefill, expand, a, &p.stages);
  if (!p.smem && prefill && !forced) {
    prefill = false;
    p.smem = layoutSmem(c, D, prefill, expand, a, &p.stages);
  }
  if (!p.smem)
    throw Error(std::string(opName) + ": kDim " + std::to_string(a.kDim) + " and vDim " +
                std::to_string(a.vDim) + " need more shared memory per block than the device's " +
                std::to_string(c.maxSmem) + " bytes (" + (prefill ? "prefill" : "decode") + " layout)");
  p.prefill = prefill;
  p.expand = expand;
  p.opName = opName;
  const int G = a.numHeads / a.numKvHeads;
  p.HC = largestDivisor(G, prefill ? 64 : 8);
  p.R = prefill ? 64 / p.HC : 1;
  const long long rowTiles = (static_cast<long long>(a.numTokens) + p.R - 1) / p.R;
  p.gridX = unsigned(rowTiles + a.numSeqs);
  const long long blocks = (prefill ? rowTiles : a.numTokens) * (a.numHeads / p.HC);
  const long long span = static_cast<long long>(a.maxKeys) + (prefill ? p.R - 1 : 0);
  const long long tiles = std::max(1LL, (span + kLowRankTileKeys - 1) / kLowRankTileKeys);
  const long long slots = static_cast<long long>(c.numSMs) * blocksPerSM(D, a, p);
  const long long want = !prefill || blocks < slots ? waveFillSplits(blocks, slots, tiles) : 1;
  const long long chunkTiles = (tiles + want - 1) / want;
  p.splits = int((tiles + chunkTiles - 1) / chunkTiles);
  p.chunk = int(std::min<long long>(chunkTiles * kLowRankTileKeys, INT_MAX / 2));
  if (p.splits > 1) {
    const size_t rows = size_t(a.numTokens) * a.numHeads;
    p.partO = scratch(rows * p.splits * (size_t(a.vDim) + 1) * sizeof(float));
    p.partLse = p.partO + rows * p.splits * a.vDim;
  }
  p.counters = prefill ? nullptr
                       : splitMergeCounters(c, p.splits, a.numTokens, a.numHeads / p.HC, p.HC,
                                            p.smem, fusedSplitMerge());
  if (D == 64) launchLowRank64(c, a, lr, p);
  else if (D == 128) launchLowRank128(c, a, lr, p);
  else launchLowRank256(c, a, lr, p);
  if (p.splits > 1 && !p.counters)
    combineSplits(c, a.out, p.partO, p.partLse, size_t(a.numTokens) * a.numHeads, p.splits, a.vDim);
}

bool alignedForCopies(const AttnArgs& a) {
  return a.pageBytes % 16 == 0 && reinterpret_cast<uintptr_t>(a.arena) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(a.q) % 16 == 0 && reinterpret_cast<uintptr_t>(a.out) % 4 == 0;
}

}  // namespace

bool narrowValuesSupported(const Ctx& c, const AttnArgs& a) {
  int stages = 0;
  return a.vDim < a.kDim && headDimSupported(a.kDim) && a.vDim % 8 == 0 && alignedForCopies(a) &&
         layoutSmem(c, a.kDim, false, false, a, &stages) > 0;
}

void attentionNarrowValues(const Ctx& c, const AttnArgs& a, bool prefill, bool forced,
                           const std::function<float*(size_t)>& scratch) {
  const LowRankArgs lr{nullptr, nullptr, nullptr, kOpAttention};
  run(c, a, lr, a.kDim, false, prefill, forced, scratch, "attention");
}

void attentionLowRankKeys(const Ctx& c, void* out, const void* q, const PagedKv& kv,
                          const BatchLayout& batch, int numHeads, int window, float scale,
                          float softcap, const LowRankKeysDev& keys, AttnPath path,
                          const std::function<float*(size_t)>& scratch) {
  const char* op = "attentionLowRankKeys";
  checkPagedKvLayout(kv, op);
  checkAttentionScalars(scale, softcap, op);
  auto fail = [&](const std::string& what) { throw Error(std::string(op) + ": " + what); };
  if (numHeads <= 0 || numHeads % kv.numKvHeads != 0)
    fail("numHeads " + std::to_string(numHeads) + " is not a positive multiple of numKvHeads " +
         std::to_string(kv.numKvHeads));
  if (!keys.basis) fail("key basis is null");
  const int D = keys.headDim;
  if (!headDimSupported(D))
    fail("head dim " + std::to_string(D) + " is not supported by the CUDA kernels (64, 128 or 256)");
  if (kv.kDim > D) fail("key rank (kv.kDim " + std::to_string(kv.kDim) + ") exceeds the head dim " + std::to_string(D));
  if (kv.kDim % 8 != 0)
    fail("key rank (kv.kDim " + std::to_string(kv.kDim) + ") must be a multiple of 8 on CUDA");
  if (kv.vDim % 8 != 0 || kv.vDim > D)
    fail("value width (kv.vDim " + std::to_string(kv.vDim) + ") must be a multiple of 8 and at most the head dim " +
         std::to_string(D) + " on CUDA");
  if (path == AttnPath::Generic) fail("there is no generic kernel for low-rank keys (paths: auto, decode, prefill)");
  if (batch.numTokens <= 0) return;
  AttnArgs a = attentionArgs(kv, batch, out, q, numHeads, window, scale, softcap);
  if (!alignedForCopies(a))
    fail("the KV arena, its pageBytes, q and out must be 16-byte aligned (cp.async)");
  const bool prefill = path == AttnPath::Prefill || (path == AttnPath::Auto && batch.numTokens > batch.numSeqs);
  const LowRankArgs lr{keys.basis, keys.invFreq, keys.rot, kOpAttentionLowRankKeys};
  run(c, a, lr, D, true, prefill, path != AttnPath::Auto, scratch, op);
}

}  // namespace cuda
}  // namespace mixattn
