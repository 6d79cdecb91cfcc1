// Paged KV entry points: appendKv writes new K/V rows into their pages; attention splits the
// step's rows into tasks and runs the row kernel (decode) or the tile kernel (runs of
// consecutive rows of one sequence, i.e. prefill chunks) on each. attentionLowRankKeys runs
// the same kernels with the keys expanded from their low-rank coefficients block by block.
//
// A task is (run of rows, KV head) and covers all query heads of that GQA group, so each K/V
// row is read (and widened from bf16) once per group. Every row only needs its own position
// and sequence, so prefill chunks, decode tokens and ragged mixes all work.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "common/paged_kv_check.h"
#include "cpu/attention.h"

namespace mixattn {
namespace cpu {

namespace {

// Query vectors per tile: R rows x G heads ~ 24 (four 6-row register tiles).
constexpr int kTileQueries = 24;
// With low-rank keys (expanded once per tile and block).
constexpr int kLowRankTileQueries = 96;

}  // namespace

void throwBadPage(const char* op, int seq, int pos, const char* what, int64_t page,
                  int numPages) {
  std::string msg = std::string(op) + ": sequence " + std::to_string(seq) + " position " +
                    std::to_string(pos) + ": ";
  if (std::string(what) != "page")
    msg += what;
  else if (page < 0)
    msg += "page id " + std::to_string(page) + " is missing";
  else
    msg += "page id " + std::to_string(page) + " is out of range (numPages " +
           std::to_string(numPages) + ")";
  throw Error(msg);
}

void appendKv(ThreadPool& pool, const PagedKv& kv, const BatchLayout& batch, const float* k,
              const float* v) {
  checkPagedKvLayout(kv, "appendKv");
  const int T = std::max(batch.numTokens, 0);
  // Resolve (and validate) every page first so a bad id leaves the cache untouched.
  std::vector<int32_t> pages(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t)
    pages[t] = pageOf(kv, batch, batch.seqOfToken[t], batch.positions[t], "appendKv");
  const PageRows rows{kv};
  const int H = kv.numKvHeads;
  pool.parallelFor(size_t(T), [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      int off = batch.positions[t] % kv.blockSize;
      for (int h = 0; h < H; ++h) {
        fromFloat(rows.k(pages[t], h, off), kv.dtype, k + (t * H + h) * size_t(kv.kDim),
                  size_t(kv.kDim));
        fromFloat(rows.v(pages[t], h, off), kv.dtype, v + (t * H + h) * size_t(kv.vDim),
                  size_t(kv.vDim));
      }
    }
  }, std::max<size_t>(1, 8192 / (size_t(H) * (kv.kDim + kv.vDim))));
}

namespace {

void checkHeads(const PagedKv& kv, int numHeads, const char* op) {
  if (numHeads <= 0 || numHeads % kv.numKvHeads != 0)
    throw Error(std::string(op) + ": numHeads " + std::to_string(numHeads) +
                " is not a positive multiple of numKvHeads " + std::to_string(kv.numKvHeads));
}

// Splits the step's rows into runs and runs the row or tile kernel on each (run, KV head).
// Runs hold up to `runQueries` query vectors (rows x group).
void runAttention(ThreadPool& pool, const AttentionJob& job, int runQueries) {
  const BatchLayout& batch = job.batch;
  const int T = std::max(batch.numTokens, 0), H = job.kv.numKvHeads;

  // Runs of consecutive positions of one sequence, at most maxRun rows each.
  const int maxRun = std::max(1, runQueries / job.group);
  std::vector<std::pair<int, int>> runs;  // (first row, rows)
  for (int t = 0; t < T;) {
    int s = batch.seqOfToken[t], p = batch.positions[t];
    if (s < 0 || s >= batch.numSeqs || p < 0)
      throwBadPage(job.op, s, p, s < 0 || s >= batch.numSeqs ? "sequence out of range"
                                                                   : "negative position", 0, 0);
    int r = 1;
    while (r < maxRun && t + r < T && batch.seqOfToken[t + r] == s &&
           batch.positions[t + r] == p + r)
      ++r;
    runs.emplace_back(t, r);
    t += r;
  }

  const size_t tasks = runs.size() * size_t(H);
  pool.parallelFor(tasks, [&](size_t b, size_t e) {
    AttentionScratch scratch;
    for (size_t i = b; i < e; ++i) {
      // Last runs first: later rows of a prefill chunk see more keys, and handing out the
      // big tasks first evens out the threads' finishing times.
      size_t task = tasks - 1 - i;
      const std::pair<int, int>& run = runs[task / H];
      int g = int(task % H);
      if (run.second == 1)
        attendRow(job, run.first, g, scratch);
      else
        attendTile(job, run.first, run.second, g, scratch);
    }
  });
}

}  // namespace

void attention(ThreadPool& pool, float* out, const float* q, const PagedKv& kv,
               const BatchLayout& batch, int numHeads, int window, float scale, float softcap) {
  checkPagedKvLayout(kv, "attention");
  checkHeads(kv, numHeads, "attention");
  checkAttentionScalars(scale, softcap, "attention");
  AttentionJob job{out, q, kv, batch, numHeads, numHeads / kv.numKvHeads, window, scale,
                   softcap, kv.kDim};
  runAttention(pool, job, kTileQueries);
}

void attentionLowRankKeys(ThreadPool& pool, float* out, const float* q, const PagedKv& kv,
                          const BatchLayout& batch, int numHeads, int window, float scale,
                          float softcap, const KeyBasis& keys) {
  checkPagedKvLayout(kv, "attentionLowRankKeys");
  checkHeads(kv, numHeads, "attentionLowRankKeys");
  checkAttentionScalars(scale, softcap, "attentionLowRankKeys");
  const KeyExpansion expansion = makeKeyExpansion(keys, kv.kDim);
  AttentionJob job{out, q, kv, batch, numHeads, numHeads / kv.numKvHeads, window, scale,
                   softcap, keys.headDim, &expansion, "attentionLowRankKeys"};
  // Longer runs than attention()'s: each block's expansion (headDim x kDim multiply-adds per
  // key) is then shared by more query vectors.
  runAttention(pool, job, kLowRankTileQueries);
}

}  // namespace cpu
}  // namespace mixattn
