// Low-rank keys (Eigen Attention) for the CPU attention kernels: a block of cached
// coefficient rows c[kDim] becomes full keys k = rope(U·c, position) once per (block, KV
// head), and the row/tile kernels score every query head of the group and every row of the
// run against that one expansion. U·c goes through the register tile of tile.h (U is kept
// transposed and zero-padded, so a tile's 8-wide strip of Uᵀ is what the kernel multiplies);
// the rotation uses the rope op's math (rope_row.h), angles stepped along the block.
#include <string>

#include "common/rope_freq.h"
#include "cpu/attention.h"
#include "cpu/rope_row.h"
#include "cpu/tile.h"

namespace mixattn {
namespace cpu {

KeyExpansion makeKeyExpansion(const KeyBasis& keys, int kDim) {
  const std::string op = "attentionLowRankKeys: ";
  if (!keys.basis) throw Error(op + "key basis is null");
  if (keys.headDim <= 0 || keys.headDim % 2 != 0)
    throw Error(op + "head dim " + std::to_string(keys.headDim) + " must be positive and even");
  if (kDim > keys.headDim)
    throw Error(op + "key rank (kv.kDim " + std::to_string(kDim) + ") exceeds the head dim " +
                std::to_string(keys.headDim));
  KeyExpansion e;
  e.headDim = keys.headDim;
  e.hPad = (keys.headDim + kTileCols - 1) / kTileCols * kTileCols;
  e.invFreq = ropeInverseFrequencies(keys.rope, keys.headDim);
  e.basisT.assign(size_t(kDim) * e.hPad, 0.f);
  for (int i = 0; i < keys.headDim; ++i)
    for (int j = 0; j < kDim; ++j)
      e.basisT[size_t(j) * e.hPad + i] = keys.basis[size_t(i) * kDim + j];
  return e;
}

void expandKeys(const AttentionJob& job, int32_t page, int g, int i0, int cnt, int pos0,
                AttentionScratch& sc) {
  const KeyExpansion& e = *job.lowRank;
  const PagedKv& kv = job.kv;
  const PageRows rows{kv};
  const int kDim = kv.kDim, hPad = e.hPad, half = e.headDim / 2;
  // The block's coefficient rows are consecutive in the page: f32 ones are used in place.
  const float* c;
  if (kv.dtype == DType::F32) {
    c = reinterpret_cast<const float*>(rows.k(page, g, i0));
  } else {
    sc.c.resize(size_t(cnt) * kDim);
    toFloat(sc.c.data(), rows.k(page, g, i0), kv.dtype, size_t(cnt) * kDim);
    c = sc.c.data();
  }
  sc.kx.resize(size_t(cnt) * hPad);
  for (int col = 0; col < hPad; col += kTileCols)
    multiplyStrip(cnt, kDim, c, kDim, &e.basisT[col], hPad, &sc.kx[col], hPad, kTileCols, false,
                  nullptr);
  sc.cosv.resize(size_t(cnt) * half);
  sc.sinv.resize(size_t(cnt) * half);
  ropeAnglesRun(pos0, cnt, e.invFreq.data(), half, sc.cosv.data(), sc.sinv.data());
  for (int r = 0; r < cnt; ++r)
    rotateHalf(&sc.kx[size_t(r) * hPad], half, &sc.cosv[size_t(r) * half],
               &sc.sinv[size_t(r) * half]);
}

}  // namespace cpu
}  // namespace mixattn
