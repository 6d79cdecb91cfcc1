// Attention for a run of consecutive rows of one sequence (prefill chunks), FlashAttention
// style: the run's R rows x G heads of one KV head form a query tile; per KV block the K rows
// are packed once into 8-key panels and S = Q·Kᵀ, then O += P·V, both go through the
// register-tiled kernel of tile.h, so every K/V element loaded serves the whole tile.
// Each row keeps its own causal/window limits through a mask on S. Low-rank keys are
// expanded (attention_lowrank.cc) once per block for the whole tile, then packed the same way.
#include <cmath>
#include <limits>

#include "cpu/attention.h"
#include "cpu/simd.h"
#include "cpu/tile.h"

namespace mixattn {
namespace cpu {

namespace {

constexpr int kKeys = kTileCols;  // keys per packed K panel

int roundUp(int x, int m) { return (x + m - 1) / m * m; }

}  // namespace

void attendTile(const AttentionJob& job, int t0, int R, int g, AttentionScratch& sc) {
  const PagedKv& kv = job.kv;
  const PageRows rows{kv};
  const int G = job.group, bs = kv.blockSize, qDim = job.qDim, vDim = kv.vDim;
  const int nq = R * G, sPad = roundUp(bs, kKeys), vPad = roundUp(vDim, kTileCols);
  const int s = job.batch.seqOfToken[t0], p0 = job.batch.positions[t0], pLast = p0 + R - 1;
  const int lo0 = job.lo(p0);

  // Query tile [nq][qDim], row-major with q = r*G + h, pre-multiplied by the scale.
  sc.q.resize(size_t(nq) * qDim);
  for (int r = 0; r < R; ++r) {
    const float* src = job.q + (size_t(t0 + r) * job.numHeads + size_t(g) * G) * qDim;
    float* dst = &sc.q[size_t(r) * G * qDim];
    for (size_t i = 0; i < size_t(G) * qDim; ++i) dst[i] = src[i] * job.scale;
  }
  sc.k.resize(size_t(sPad) * qDim);
  sc.v.assign(size_t(bs) * vPad, 0.f);  // padding columns stay zero
  sc.s.resize(size_t(nq) * sPad);
  sc.o.assign(size_t(nq) * vPad, 0.f);
  sc.maxScore.assign(size_t(nq), -std::numeric_limits<float>::infinity());
  sc.sum.assign(size_t(nq), 0.f);

  for (int blk = lo0 / bs; blk <= pLast / bs; ++blk) {
    int32_t page = pageOf(kv, job.batch, s, blk * bs, job.op);
    if (blk < pLast / bs) prefetchBlock(rows, s, blk + 1, g);
    const int j0 = std::max(lo0, blk * bs), j1 = std::min(pLast, blk * bs + bs - 1);
    const int cnt = j1 - j0 + 1, i0 = j0 - blk * bs, panels = (cnt + kKeys - 1) / kKeys;

    // K rows -> panels [panel][d][8 keys] (fp32, zero past cnt); V rows -> [cnt][vPad].
    if (job.lowRank) expandKeys(job, page, g, i0, cnt, j0, sc);
    for (int j = 0; j < panels * kKeys; ++j) {
      float* dst = &sc.k[size_t(j / kKeys) * qDim * kKeys + j % kKeys];
      if (j < cnt && job.lowRank) {
        const float* src = &sc.kx[size_t(j) * job.lowRank->hPad];
        for (int d = 0; d < qDim; ++d) dst[size_t(d) * kKeys] = src[d];
      } else if (j < cnt && kv.dtype == DType::F32) {
        const float* src = reinterpret_cast<const float*>(rows.k(page, g, i0 + j));
        for (int d = 0; d < qDim; ++d) dst[size_t(d) * kKeys] = src[d];
      } else if (j < cnt) {
        const uint16_t* src = reinterpret_cast<const uint16_t*>(rows.k(page, g, i0 + j));
        for (int d = 0; d < qDim; ++d) dst[size_t(d) * kKeys] = bf16ToFloat(src[d]);
      } else {
        for (int d = 0; d < qDim; ++d) dst[size_t(d) * kKeys] = 0.f;
      }
    }
    for (int j = 0; j < cnt; ++j)
      toFloat(&sc.v[size_t(j) * vPad], rows.v(page, g, i0 + j), kv.dtype, size_t(vDim));

    for (int pn = 0; pn < panels; ++pn)
      multiplyStrip(nq, qDim, sc.q.data(), qDim, &sc.k[size_t(pn) * qDim * kKeys], kKeys,
                    &sc.s[size_t(pn) * kKeys], sPad, kKeys, false, nullptr);

    // Mask each row to its own [lo, p], cap, and fold the block into the online softmax;
    // S becomes P in place.
    for (int q = 0; q < nq; ++q) {
      const int pr = p0 + q / G;
      const int a = std::max(job.lo(pr), j0) - j0, b = std::min(pr, j1) - j0;
      float* w = &sc.s[size_t(q) * sPad];
      if (a > b) {  // no key of this block is visible to this row
        std::fill(w, w + cnt, 0.f);
        continue;
      }
      float m = sc.maxScore[q];
      for (int j = a; j <= b; ++j) {
        w[j] = job.cap(w[j]);
        m = std::max(m, w[j]);
      }
      float corr = std::exp(sc.maxScore[q] - m);
      if (corr != 1.f) {
        sc.sum[q] *= corr;
        float* o = &sc.o[size_t(q) * vPad];
        for (int d = 0; d < vDim; ++d) o[d] *= corr;
      }
      float sum = 0;
      for (int j = 0; j < cnt; ++j) {
        w[j] = (j >= a && j <= b) ? std::exp(w[j] - m) : 0.f;
        sum += w[j];
      }
      sc.sum[q] += sum;
      sc.maxScore[q] = m;
    }

    for (int c = 0; c < vPad; c += kTileCols)
      multiplyStrip(nq, cnt, sc.s.data(), sPad, &sc.v[c], vPad, &sc.o[c], vPad, kTileCols, true,
                    nullptr);
  }

  for (int q = 0; q < nq; ++q) {
    float* out = job.out + (size_t(t0 + q / G) * job.numHeads + size_t(g) * G + q % G) * vDim;
    const float* o = &sc.o[size_t(q) * vPad];
    float inv = 1.f / sc.sum[q];
    for (int d = 0; d < vDim; ++d) out[d] = o[d] * inv;
  }
}

}  // namespace cpu
}  // namespace mixattn
