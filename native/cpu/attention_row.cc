// Attention for a single row (decode): the G query heads of one KV head walk the row's keys
// block by block with an online softmax. K rows are dotted straight from the page (for bf16
// the queries are kept in splitPairs order so 8 values widen with a shift and a mask), or,
// for low-rank keys, from the block's expansion (once for the group), and P·V goes through
// the register tile, so each K/V row is read once per group and the output accumulators stay
// in registers across a block.
#include <cmath>
#include <limits>

#include "cpu/attention.h"
#include "cpu/simd.h"
#include "cpu/tile.h"

namespace mixattn {
namespace cpu {

void attendRow(const AttentionJob& job, int t, int g, AttentionScratch& sc) {
  const PagedKv& kv = job.kv;
  const PageRows rows{kv};
  const int G = job.group, bs = kv.blockSize, qDim = job.qDim, vDim = kv.vDim;
  const int vPad = (vDim + kTileCols - 1) / kTileCols * kTileCols;
  const bool bf16 = kv.dtype == DType::BF16, expand = job.lowRank != nullptr;
  // f32 V rows whose width is a multiple of the tile are read in place; others are widened
  // into a zero-padded block first.
  const bool vInPlace = !bf16 && vDim == vPad;
  const int s = job.batch.seqOfToken[t], p = job.batch.positions[t], lo = job.lo(p);

  sc.q.resize(size_t(G) * qDim);
  sc.o.assign(size_t(G) * vPad, 0.f);
  sc.s.resize(size_t(G) * bs);
  if (!vInPlace) sc.v.assign(size_t(bs) * vPad, 0.f);
  sc.maxScore.assign(size_t(G), -std::numeric_limits<float>::infinity());
  sc.sum.assign(size_t(G), 0.f);
  const float* qIn = job.q + (size_t(t) * job.numHeads + size_t(g) * G) * qDim;
  for (int h = 0; h < G; ++h) {
    if (bf16 && !expand)
      splitPairs(&sc.q[size_t(h) * qDim], qIn + size_t(h) * qDim, qDim);
    else
      std::copy_n(qIn + size_t(h) * qDim, qDim, &sc.q[size_t(h) * qDim]);
  }

  for (int blk = lo / bs; blk <= p / bs; ++blk) {
    int32_t page = pageOf(kv, job.batch, s, blk * bs, job.op);
    if (blk < p / bs) prefetchBlock(rows, s, blk + 1, g);
    int i0 = std::max(lo - blk * bs, 0), i1 = std::min(p - blk * bs, bs - 1);
    int cnt = i1 - i0 + 1;
    if (expand) expandKeys(job, page, g, i0, cnt, blk * bs + i0, sc);
    for (int i = i0; i <= i1; ++i) {
      const char* k = rows.k(page, g, i);
      for (int h = 0; h < G; ++h) {
        const float* q = &sc.q[size_t(h) * qDim];
        float x = expand ? dotF32(q, &sc.kx[size_t(i - i0) * job.lowRank->hPad], qDim)
                  : bf16 ? dotBf16Split(q, reinterpret_cast<const uint16_t*>(k), qDim)
                         : dotF32(q, reinterpret_cast<const float*>(k), qDim);
        sc.s[size_t(h) * bs + (i - i0)] = job.cap(x * job.scale);
      }
    }
    // Online softmax: rescale what has been summed so far to the new running max.
    for (int h = 0; h < G; ++h) {
      float* w = &sc.s[size_t(h) * bs];
      float m = sc.maxScore[h];
      for (int i = 0; i < cnt; ++i) m = std::max(m, w[i]);
      float corr = std::exp(sc.maxScore[h] - m);
      if (corr != 1.f) {
        sc.sum[h] *= corr;
        float* o = &sc.o[size_t(h) * vPad];
        for (int d = 0; d < vDim; ++d) o[d] *= corr;
      }
      float sum = 0;
      for (int i = 0; i < cnt; ++i) {
        w[i] = std::exp(w[i] - m);
        sum += w[i];
      }
      sc.sum[h] += sum;
      sc.maxScore[h] = m;
    }
    // O[G, vDim] += P[G, cnt] · V[cnt, vDim], accumulated in registers across the block.
    const float* v;
    int ldv;
    if (vInPlace) {
      v = reinterpret_cast<const float*>(rows.v(page, g, i0));
      ldv = vDim;
    } else {
      for (int i = 0; i < cnt; ++i)
        toFloat(&sc.v[size_t(i) * vPad], rows.v(page, g, i0 + i), kv.dtype, size_t(vDim));
      v = sc.v.data();
      ldv = vPad;
    }
    for (int c = 0; c < vPad; c += kTileCols)
      multiplyStrip(G, cnt, sc.s.data(), bs, v + c, ldv, &sc.o[c], vPad, kTileCols, true,
                    nullptr);
  }
  for (int h = 0; h < G; ++h) {
    float* out = job.out + (size_t(t) * job.numHeads + size_t(g) * G + h) * vDim;
    const float* o = &sc.o[size_t(h) * vPad];
    float inv = 1.f / sc.sum[h];
    for (int d = 0; d < vDim; ++d) out[d] = o[d] * inv;
  }
}

}  // namespace cpu
}  // namespace mixattn
