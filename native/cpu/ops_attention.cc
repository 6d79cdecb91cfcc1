// Paged KV: append new K/V rows into their pages, and attention over the cached keys.
//
// Attention runs one task per (row, KV head): the task handles all query heads of that GQA
// group, so each K/V row is read (and widened from bf16) once per group. Keys are visited a
// block (page) at a time with an online softmax: scores for the block, one rescale of the
// running sums, then the weighted V rows. Every row only needs its own position and sequence,
// so prefill chunks, decode tokens and ragged mixes all go through the same path.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu/cpu_ops.h"

namespace mixattn {
namespace cpu {

namespace {

void checkLayout(const PagedKv& kv, const char* op) {
  auto fail = [&](const std::string& what) { throw Error(std::string(op) + ": " + what); };
  if (!kv.arena) fail("KV arena is null");
  if (kv.numKvHeads <= 0 || kv.blockSize <= 0 || kv.kDim <= 0 || kv.vDim <= 0)
    fail("numKvHeads, blockSize, kDim and vDim must be positive");
  if (kv.pagesPerBlock <= 0 || kv.slot < 0 || kv.slot >= kv.pagesPerBlock)
    fail("slot " + std::to_string(kv.slot) + " outside [0, pagesPerBlock=" +
         std::to_string(kv.pagesPerBlock) + ")");
  size_t need = size_t(kv.numKvHeads) * kv.blockSize * (size_t(kv.kDim) + kv.vDim) *
                dtypeSize(kv.dtype);
  if (kv.pageBytes < need)
    fail("pageBytes " + std::to_string(kv.pageBytes) + " is smaller than the page layout (" +
         std::to_string(need) + " bytes)");
}

// The page holding (sequence s, position pos) for this layer; throws on a bad row or page.
int32_t pageOf(const PagedKv& kv, const BatchLayout& batch, int s, int pos, const char* op) {
  std::string where = std::string(op) + ": sequence " + std::to_string(s) + " position " +
                      std::to_string(pos);
  if (s < 0 || s >= batch.numSeqs) throw Error(where + ": sequence index out of range");
  if (pos < 0) throw Error(where + ": negative position");
  size_t entry = size_t(pos / kv.blockSize) * kv.pagesPerBlock + kv.slot;
  if (entry >= size_t(kv.tableStride)) throw Error(where + ": beyond the block table");
  int32_t page = kv.blockTables[size_t(s) * kv.tableStride + entry];
  if (page < 0 || page >= kv.numPages)
    throw Error(where + ": page id " + std::to_string(page) + " is " +
                (page < 0 ? "missing" : "out of range (numPages " +
                                            std::to_string(kv.numPages) + ")"));
  return page;
}

// Byte offsets inside a page: K as [head][blockSize][kDim], then V as [head][blockSize][vDim].
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

struct Scratch {
  std::vector<float> kRow, vRow, scores, acc, maxScore, sum;
};

struct AttentionJob {
  float* out;
  const float* q;
  const PagedKv& kv;
  const BatchLayout& batch;
  int numHeads, group, window;
  float scale, softcap;
};

// Row t, KV head g: the `group` query heads g*group... against the keys [lo, p].
void attendGroup(const AttentionJob& job, int t, int g, Scratch& sc) {
  const PagedKv& kv = job.kv;
  const PageRows rows{kv};
  const int G = job.group, bs = kv.blockSize, kDim = kv.kDim, vDim = kv.vDim;
  const int s = job.batch.seqOfToken[t], p = job.batch.positions[t];
  if (p < 0)
    throw Error("attention: row " + std::to_string(t) + " has negative position " +
                std::to_string(p));
  const int lo = job.window > 0 ? std::max(0, p - job.window + 1) : 0;
  const float* q = job.q + (size_t(t) * job.numHeads + size_t(g) * G) * kDim;
  float* acc = sc.acc.data();
  std::fill(sc.acc.begin(), sc.acc.end(), 0.f);
  std::fill(sc.maxScore.begin(), sc.maxScore.end(), -std::numeric_limits<float>::infinity());
  std::fill(sc.sum.begin(), sc.sum.end(), 0.f);
  const bool f32 = kv.dtype == DType::F32;

  for (int blk = lo / bs; blk <= p / bs; ++blk) {
    int32_t page = pageOf(kv, job.batch, s, blk * bs, "attention");
    int i0 = std::max(lo - blk * bs, 0), i1 = std::min(p - blk * bs, bs - 1);
    int cnt = i1 - i0 + 1;
    for (int i = i0; i <= i1; ++i) {
      const float* k = f32 ? reinterpret_cast<const float*>(rows.k(page, g, i)) : sc.kRow.data();
      if (!f32) toFloat(sc.kRow.data(), rows.k(page, g, i), kv.dtype, size_t(kDim));
      for (int h = 0; h < G; ++h) {
        float x = dot(q + size_t(h) * kDim, k, size_t(kDim)) * job.scale;
        if (job.softcap > 0) x = job.softcap * std::tanh(x / job.softcap);
        sc.scores[size_t(h) * bs + (i - i0)] = x;
      }
    }
    // Online softmax: rescale what has been summed so far to the new running max.
    for (int h = 0; h < G; ++h) {
      float* w = sc.scores.data() + size_t(h) * bs;
      float m = sc.maxScore[h];
      for (int i = 0; i < cnt; ++i) m = std::max(m, w[i]);
      float corr = std::exp(sc.maxScore[h] - m);
      if (corr != 1.f) {
        sc.sum[h] *= corr;
        float* a = acc + size_t(h) * vDim;
        for (int d = 0; d < vDim; ++d) a[d] *= corr;
      }
      float sum = 0;
      for (int i = 0; i < cnt; ++i) {
        w[i] = std::exp(w[i] - m);
        sum += w[i];
      }
      sc.sum[h] += sum;
      sc.maxScore[h] = m;
    }
    for (int i = i0; i <= i1; ++i) {
      const float* v = f32 ? reinterpret_cast<const float*>(rows.v(page, g, i)) : sc.vRow.data();
      if (!f32) toFloat(sc.vRow.data(), rows.v(page, g, i), kv.dtype, size_t(vDim));
      for (int h = 0; h < G; ++h) {
        float w = sc.scores[size_t(h) * bs + (i - i0)];
        float* __restrict a = acc + size_t(h) * vDim;
        for (int d = 0; d < vDim; ++d) a[d] += w * v[d];
      }
    }
  }
  for (int h = 0; h < G; ++h) {
    float inv = 1.f / sc.sum[h];
    float* o = job.out + (size_t(t) * job.numHeads + size_t(g) * G + h) * vDim;
    const float* a = acc + size_t(h) * vDim;
    for (int d = 0; d < vDim; ++d) o[d] = a[d] * inv;
  }
}

}  // namespace

void appendKv(ThreadPool& pool, const PagedKv& kv, const BatchLayout& batch, const float* k,
              const float* v) {
  checkLayout(kv, "appendKv");
  const int T = batch.numTokens;
  // Resolve (and validate) every page first so a bad id leaves the cache untouched.
  std::vector<int32_t> pages(size_t(std::max(T, 0)));
  for (int t = 0; t < T; ++t)
    pages[t] = pageOf(kv, batch, batch.seqOfToken[t], batch.positions[t], "appendKv");
  const PageRows rows{kv};
  const int H = kv.numKvHeads;
  pool.parallelFor(size_t(std::max(T, 0)), [&](size_t b, size_t e) {
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

void attention(ThreadPool& pool, float* out, const float* q, const PagedKv& kv,
               const BatchLayout& batch, int numHeads, int window, float scale, float softcap) {
  checkLayout(kv, "attention");
  if (numHeads <= 0 || numHeads % kv.numKvHeads != 0)
    throw Error("attention: numHeads " + std::to_string(numHeads) +
                " is not a positive multiple of numKvHeads " + std::to_string(kv.numKvHeads));
  const int T = batch.numTokens, H = kv.numKvHeads;
  AttentionJob job{out, q, kv, batch, numHeads, numHeads / H, window, scale, softcap};
  size_t tasks = size_t(std::max(T, 0)) * H;
  pool.parallelFor(tasks, [&](size_t b, size_t e) {
    Scratch sc;
    sc.kRow.resize(size_t(kv.kDim));
    sc.vRow.resize(size_t(kv.vDim));
    sc.scores.resize(size_t(job.group) * kv.blockSize);
    sc.acc.resize(size_t(job.group) * kv.vDim);
    sc.maxScore.resize(size_t(job.group));
    sc.sum.resize(size_t(job.group));
    for (size_t i = b; i < e; ++i) {
      // Last rows first: within a prefill chunk later rows see more keys, and handing out
      // the big tasks first evens out the threads' finishing times.
      size_t task = tasks - 1 - i;
      attendGroup(job, int(task / H), int(task % H), sc);
    }
  });
}

}  // namespace cpu
}  // namespace mixattn
