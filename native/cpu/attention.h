// Internal to the CPU attention: page lookup, the page layout and the two kernels
// (attention_row.cc for single rows, attention_tile.cc for runs of consecutive rows).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/cpu_ops.h"

namespace mixattn {
namespace cpu {

// Throws the Error for a bad (sequence, position) or page id; out of line to keep pageOf small.
[[noreturn]] void throwBadPage(const char* op, int seq, int pos, const char* what, int64_t page,
                               int numPages);

// The page holding (sequence s, position pos) for this layer; throws on a bad row or page.
inline int32_t pageOf(const PagedKv& kv, const BatchLayout& batch, int s, int pos,
                      const char* op) {
  if (s < 0 || s >= batch.numSeqs) throwBadPage(op, s, pos, "sequence out of range", 0, 0);
  if (pos < 0) throwBadPage(op, s, pos, "negative position", 0, 0);
  size_t entry = size_t(pos / kv.blockSize) * kv.pagesPerBlock + kv.slot;
  if (entry >= size_t(kv.tableStride)) throwBadPage(op, s, pos, "beyond the block table", 0, 0);
  int32_t page = kv.blockTables[size_t(s) * kv.tableStride + entry];
  if (page < 0 || page >= kv.numPages) throwBadPage(op, s, pos, "page", page, kv.numPages);
  return page;
}

// Rows inside a page: K as [head][blockSize][kDim], then V as [head][blockSize][vDim].
struct PageRows {
  const PagedKv& kv;
  size_t es = dtypeSize(kv.dtype);
  size_t vArea = size_t(kv.numKvHeads) * kv.blockSize * kv.kDim * es;
  char* page(int32_t id) const { return static_cast<char*>(kv.arena) + size_t(id) * kv.pageBytes; }
  char* k(int32_t id, int head, int off) const {
    return page(id) + (size_t(head) * kv.blockSize + off) * kv.kDim * es;
  }
  char* v(int32_t id, int head, int off) const {
    return page(id) + vArea + (size_t(head) * kv.blockSize + off) * kv.vDim * es;
  }
};

// Prefetches KV head g's K and V rows of (sequence s, block blk) when that page id is valid;
// never throws (the block is validated by pageOf when it is actually read). Pages are
// scattered, so the hardware prefetchers lose the stream at every block boundary.
// Always inlined: GCC treats an out-of-line prefetch loop as a "looping const" call whose
// result is unused and deletes it.
#if defined(__GNUC__) || defined(__clang__)
__attribute__((always_inline))
#endif
inline void prefetchBlock(const PageRows& rows, int s, int blk, int g) {
#if defined(__GNUC__) || defined(__clang__)
  const PagedKv& kv = rows.kv;
  size_t entry = size_t(blk) * kv.pagesPerBlock + kv.slot;
  if (entry >= size_t(kv.tableStride)) return;
  int32_t page = kv.blockTables[size_t(s) * kv.tableStride + entry];
  if (page < 0 || page >= kv.numPages) return;
  const char* k = rows.k(page, g, 0);
  const char* v = rows.v(page, g, 0);
  size_t kBytes = size_t(kv.blockSize) * kv.kDim * rows.es;
  size_t vBytes = size_t(kv.blockSize) * kv.vDim * rows.es;
  for (size_t off = 0; off < kBytes; off += 64) __builtin_prefetch(k + off);
  for (size_t off = 0; off < vBytes; off += 64) __builtin_prefetch(v + off);
#else
  (void)rows, (void)s, (void)blk, (void)g;
#endif
}

// Low-rank keys (attentionLowRankKeys): the page holds c[kDim] per key; the kernels score
// against k = rope(U·c, key position), expanded by expandKeys one block of keys at a time.
struct KeyExpansion {
  int headDim = 0, hPad = 0;      // hPad: headDim rounded up to the register tile's width
  std::vector<float> basisT;      // Uᵀ as [kDim][hPad], zero past headDim
  std::vector<double> invFreq;    // RoPE inverse frequencies, headDim / 2
};

struct AttentionJob {
  float* out;
  const float* q;
  const PagedKv& kv;
  const BatchLayout& batch;
  int numHeads, group, window;
  float scale, softcap;
  int qDim;                              // width of q and of the scored keys
  const KeyExpansion* lowRank = nullptr;  // set: keys are expanded (qDim = headDim)
  const char* op = "attention";           // names the op in errors
  int lo(int p) const { return window > 0 ? std::max(0, p - window + 1) : 0; }
  // Soft-capping (Gemma 2): softcap·tanh(x/softcap); identity when softcap <= 0.
  float cap(float x) const { return softcap > 0 ? softcap * std::tanh(x / softcap) : x; }
};

// Per-thread buffers, sized on first use and reused across tasks.
struct AttentionScratch {
  std::vector<float> q, k, v, s, o, maxScore, sum;
  std::vector<float> kx, c, cosv, sinv;  // expandKeys
};

// Validates the basis (throws Error naming what is wrong) and prepares Uᵀ and the frequencies.
KeyExpansion makeKeyExpansion(const KeyBasis& keys, int kDim);
// Keys i0 .. i0+cnt-1 of KV head g in `page` (positions pos0, pos0 + 1, ...), expanded and
// rotated into sc.kx as [cnt][hPad] fp32 rows (attention_lowrank.cc).
void expandKeys(const AttentionJob& job, int32_t page, int g, int i0, int cnt, int pos0,
                AttentionScratch& sc);

// Row t against its keys, for the query heads of KV head g.
void attendRow(const AttentionJob& job, int t, int g, AttentionScratch& sc);
// Rows t0 .. t0+rows-1: one sequence, consecutive positions; K/V blocks are read once for all.
void attendTile(const AttentionJob& job, int t0, int rows, int g, AttentionScratch& sc);

}  // namespace cpu
}  // namespace mixattn
