// Attention on the CUDA backend: host-side validation of what the host can see, and the
// choice of kernel.
//
//  - prefill (attn_prefill_*.cu, tensor cores): bf16 pages, kDim == vDim in {64, 128, 256},
//    chosen when some sequence brings more than one row (a prefill chunk);
//  - decode (attn_decode.cu, split-KV): the same head dims, f32 or bf16 pages, chosen when
//    every sequence brings one row (and for f32 pages);
//  - V narrower than K (kDim in {64, 128, 256}, vDim a multiple of 8): the low-rank kernels
//    (attention_lowrank.cc) with plain keys, in their prefill or decode layout;
//  - generic (attn_generic.cu): everything else (odd head dims, other kDim != vDim).
// Every path computes the same function for any layout; tests force each with
// setAttentionPath. Page ids live on the device (the runner uploads the tables), so they are
// checked by the kernels (device_error.h).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <climits>
#include <cmath>
#include <string>

#include "common/paged_kv_check.h"
#include "cuda/attention.h"
#include "cuda/cuda_backend.h"

namespace mixattn {
namespace cuda {

namespace {

std::atomic<int> gPath{int(AttnPath::Auto)};
std::atomic<int> gPrefillVariant{-1};  // "prefill:N" forces configuration N (attn_prefill_*.cu)
std::atomic<bool> gFusedMerge{true};   // "decode:combine" clears it (split_merge.cuh)

void checkLayout(const PagedKv& kv, int numHeads) {
  checkPagedKvLayout(kv, "attention");
  auto fail = [](const std::string& what) { throw Error("attention: " + what); };
  if (numHeads <= 0 || numHeads % kv.numKvHeads != 0)
    fail("numHeads " + std::to_string(numHeads) + " is not a positive multiple of numKvHeads " +
         std::to_string(kv.numKvHeads));
}

bool prefillHeadDim(int d) { return d == 64 || d == 128 || d == 256; }

// The split-KV decode kernels with their split count and scratch.
void runDecode(const Ctx& c, const AttnArgs& a, const std::function<float*(size_t)>& scratch) {
  int splits = 1;
  const size_t bytes = decodeScratchBytes(c, a, &splits);
  attentionDecode(c, a, splits, bytes ? scratch(bytes) : nullptr, fusedSplitMerge());
}

}  // namespace

void setAttentionPath(const std::string& path) {
  int variant = -1;
  bool fused = true;
  if (path.rfind("prefill:", 0) == 0) {
    const std::string n = path.substr(8);
    if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
      throw Error("attention path '" + path + "': 'prefill:N' needs a configuration number N");
    variant = std::stoi(n);
    gPath = int(AttnPath::Prefill);
  } else if (path == "auto") gPath = int(AttnPath::Auto);
  else if (path == "generic") gPath = int(AttnPath::Generic);
  else if (path == "decode") gPath = int(AttnPath::Decode);
  else if (path == "decode:combine") gPath = int(AttnPath::Decode), fused = false;
  else if (path == "prefill") gPath = int(AttnPath::Prefill);
  else throw Error("attention path '" + path + "' is unknown (auto, generic, decode, decode:combine, prefill, prefill:N)");
  gPrefillVariant = variant;
  gFusedMerge = fused;
}

bool fusedSplitMerge() {
  forcedAttentionPath();  // MIXATTN_CUDA_ATTENTION, read once
  return gFusedMerge.load();
}

AttnPath forcedAttentionPath() {
  // MIXATTN_CUDA_ATTENTION (a path name as setAttentionPath takes) forces a kernel for the
  // whole process: for bisecting a wrong result down to one kernel from any program.
  static const bool fromEnv = [] {
    const char* e = std::getenv("MIXATTN_CUDA_ATTENTION");
    if (e && *e) setAttentionPath(e);
    return true;
  }();
  (void)fromEnv;
  return AttnPath(gPath.load());
}

int maxKeysOf(const PagedKv& kv, int window) {
  // Keys one row can attend to: its table row holds at most this many positions.
  long long maxKeys = (long long)(kv.tableStride / kv.pagesPerBlock) * kv.blockSize;
  if (window > 0) maxKeys = std::min<long long>(maxKeys, window);
  return int(std::max(1LL, std::min<long long>(maxKeys, INT_MAX / 2)));
}

AttnArgs kvArgs(const PagedKv& kv, const BatchLayout& b) {
  AttnArgs a{};
  a.arena = static_cast<const char*>(kv.arena);
  a.pageBytes = kv.pageBytes;
  a.numPages = kv.numPages;
  a.blockSize = kv.blockSize;
  a.numKvHeads = kv.numKvHeads;
  a.kDim = kv.kDim;
  a.vDim = kv.vDim;
  a.kvType = kv.dtype;
  a.tables = kv.blockTables;
  a.tableStride = kv.tableStride;
  a.pagesPerBlock = kv.pagesPerBlock;
  a.slot = kv.slot;
  a.bsShift = -1;
  for (int sh = 0; sh < 31; ++sh)
    if (kv.blockSize == (1 << sh)) a.bsShift = sh;
  a.numSeqs = b.numSeqs;
  a.numTokens = b.numTokens;
  a.tokenStart = b.tokenStart;
  a.numNew = b.numNew;
  a.pastLen = b.pastLen;
  a.positions = b.positions;
  a.seqOfToken = b.seqOfToken;
  return a;
}

AttnArgs attentionArgs(const PagedKv& kv, const BatchLayout& batch, void* out, const void* q,
                       int numHeads, int window, float scale, float softcap) {
  AttnArgs a = kvArgs(kv, batch);
  a.out = out;
  a.q = q;
  a.numHeads = numHeads;
  a.window = window;
  a.scale = scale;
  a.softcap = softcap;
  a.maxKeys = maxKeysOf(kv, window);
  return a;
}

long long waveFillSplits(long long blocks, long long slots, long long tiles) {
  // Each count as it will run (tiles rounded up to whole chunks, so several counts give the
  // same split); the fewest splits whose fill reaches 95% or comes within 2% of the best
  // (merging costs a little per split, and short blocks more). The first count to reach 90%
  // left 9% of the slots idle at 1 × 128k (45 splits of 8 groups: 360 blocks on 396 slots;
  // 48 fill 384): 88% of the copy bandwidth.
  // Every layer of a step asks the same question (~1 µs to answer): the last answer is kept.
  thread_local long long lastBlocks = -1, lastSlots = -1, lastTiles = -1, lastSplits = 1;
  if (blocks == lastBlocks && slots == lastSlots && tiles == lastTiles) return lastSplits;
  lastBlocks = blocks, lastSlots = slots, lastTiles = tiles;
  const long long maxSp = std::min(tiles, 256LL);
  auto fillOf = [&](long long sp) {
    const long long chunk = (tiles + sp - 1) / sp, splits = (tiles + chunk - 1) / chunk;
    const double waves = double(blocks * splits) / double(slots);
    return waves < 1 ? waves : waves / std::ceil(waves);
  };
  double best = 0;
  for (long long sp = 1; sp <= maxSp; ++sp) best = std::max(best, fillOf(sp));
  const double enough = std::min(best - 0.02, 0.95);
  lastSplits = 1;
  for (long long sp = 1; sp <= maxSp; ++sp)
    if (fillOf(sp) >= enough) {
      lastSplits = sp;
      break;
    }
  return lastSplits;
}

bool prefillSupported(const Ctx&, const AttnArgs& a) {
  return a.kvType == DType::BF16 && a.kDim == a.vDim && prefillHeadDim(a.kDim) &&
         a.pageBytes % 16 == 0 && reinterpret_cast<uintptr_t>(a.arena) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(a.q) % 16 == 0 && reinterpret_cast<uintptr_t>(a.out) % 4 == 0;
}

void attention(const Ctx& c, void* out, const void* q, const PagedKv& kv,
               const BatchLayout& batch, int numHeads, int window, float scale, float softcap,
               const std::function<float*(size_t)>& scratch) {
  checkLayout(kv, numHeads);
  checkAttentionScalars(scale, softcap, "attention");
  if (batch.numTokens <= 0) return;
  AttnArgs a = attentionArgs(kv, batch, out, q, numHeads, window, scale, softcap);

  const bool canPrefill = prefillSupported(c, a), canDecode = decodeSupported(c, a);
  // V narrower than K: the low-rank kernels with plain keys stand in for prefill and decode.
  const bool narrow = narrowValuesSupported(c, a);
  const bool manyRows = batch.numTokens > batch.numSeqs;
  AttnPath path = forcedAttentionPath();
  const bool forced = path != AttnPath::Auto;
  if (path == AttnPath::Auto) {
    if (canPrefill && (manyRows || !canDecode)) path = AttnPath::Prefill;
    else if (canDecode) path = AttnPath::Decode;
    else if (narrow) path = manyRows ? AttnPath::Prefill : AttnPath::Decode;
    else path = AttnPath::Generic;
  }
  if (narrow && path != AttnPath::Generic) {
    attentionNarrowValues(c, a, path == AttnPath::Prefill, forced, scratch);
    return;
  }
  switch (path) {
    case AttnPath::Prefill:
      if (!canPrefill) throw Error("attention: the prefill kernel does not support this layout");
      if (a.kDim == 64) attentionPrefill64(c, a, gPrefillVariant.load());
      else if (a.kDim == 128) attentionPrefill128(c, a, gPrefillVariant.load());
      else attentionPrefill256(c, a, gPrefillVariant.load());
      break;
    case AttnPath::Decode: {
      if (!canDecode) throw Error("attention: the decode kernel does not support this layout");
      runDecode(c, a, scratch);
      break;
    }
    default:
      attentionGeneric(c, a);
  }
}

bool attentionDecodeAppend(const Ctx& c, void* out, const void* q, const PagedKv& kv,
                           const BatchLayout& batch, int numHeads, int window, float scale,
                           float softcap, const void* k, const void* v, const double* invFreq,
                           const std::function<float*(size_t)>& scratch) {
  checkLayout(kv, numHeads);
  checkAttentionScalars(scale, softcap, "attention");
  const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  // MIXATTN_CUDA_FUSED_APPEND=0: the separate ops (for comparisons).
  static const bool wanted = [] {
    const char* e = std::getenv("MIXATTN_CUDA_FUSED_APPEND");
    return !(e && std::string(e) == "0");
  }();
  if (!wanted || batch.numTokens <= 0 || batch.numTokens != batch.numSeqs) return false;
  if (forcedAttentionPath() != AttnPath::Auto || kv.dtype != DType::BF16 || !invFreq) return false;
  if (!aligned(k) || !aligned(v)) return false;
  AttnArgs a = attentionArgs(kv, batch, out, q, numHeads, window, scale, softcap);
  if (!decodeSupported(c, a)) return false;
  a.newK = k;
  a.newV = v;
  a.ropeInvFreq = invFreq;
  runDecode(c, a, scratch);
  return true;
}

}  // namespace cuda
}  // namespace mixattn
