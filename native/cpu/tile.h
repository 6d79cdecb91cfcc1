// The register-tiled kernel shared by matmul (prefill) and the attention tiles:
//   c[rows, nr] (= or +=) a[rows, kc] · b[kc, 8]
// b is a row-major strip 8 floats wide (row stride ldb): a packed W panel, a packed K block,
// or 8 columns of a V block. Up to kTileRows rows of a are held as 2·rows 4-wide
// accumulators (12 of the 16 SSE registers at 6 rows); per k: one strip row (2 loads),
// `rows` broadcasts and 2·rows multiply-adds.
#pragma once

#include <cstddef>

#include "cpu/simd.h"

namespace mixattn {
namespace cpu {

constexpr int kTileRows = 6;
constexpr int kTileCols = 8;

// `init` (or null for zeros) seeds c when not accumulating; only the first nr columns of c
// are written, so b may be zero-padded past nr.
template <int MR>
void registerTile(int kc, const float* __restrict a, int lda, const float* __restrict b,
                  int ldb, float* __restrict c, int ldc, int nr, bool accumulate,
                  const float* init) {
  F32x4 acc[MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = zero4();
  for (int k = 0; k < kc; ++k) {
    F32x4 b0 = load4(b + size_t(k) * ldb), b1 = load4(b + size_t(k) * ldb + 4);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      F32x4 ar = splat4(a[size_t(r) * lda + k]);
      acc[r][0] += ar * b0;
      acc[r][1] += ar * b1;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = c + size_t(r) * ldc;
    if (nr == kTileCols) {
      F32x4 c0 = accumulate ? load4(cr) : init ? load4(init) : zero4();
      F32x4 c1 = accumulate ? load4(cr + 4) : init ? load4(init + 4) : zero4();
      store4(cr, c0 + acc[r][0]);
      store4(cr + 4, c1 + acc[r][1]);
    } else {
      float tile[kTileCols];
      store4(tile, acc[r][0]);
      store4(tile + 4, acc[r][1]);
      for (int j = 0; j < nr; ++j) cr[j] = (accumulate ? cr[j] : (init ? init[j] : 0.f)) + tile[j];
    }
  }
}

// Any number of rows: full tiles of kTileRows, then one smaller tile.
inline void multiplyStrip(int rows, int kc, const float* a, int lda, const float* b, int ldb,
                          float* c, int ldc, int nr, bool accumulate, const float* init) {
  for (int r = 0; r < rows; r += kTileRows) {
    const float* ar = a + size_t(r) * lda;
    float* cr = c + size_t(r) * ldc;
    switch (rows - r < kTileRows ? rows - r : kTileRows) {
      case 6: registerTile<6>(kc, ar, lda, b, ldb, cr, ldc, nr, accumulate, init); break;
      case 5: registerTile<5>(kc, ar, lda, b, ldb, cr, ldc, nr, accumulate, init); break;
      case 4: registerTile<4>(kc, ar, lda, b, ldb, cr, ldc, nr, accumulate, init); break;
      case 3: registerTile<3>(kc, ar, lda, b, ldb, cr, ldc, nr, accumulate, init); break;
      case 2: registerTile<2>(kc, ar, lda, b, ldb, cr, ldc, nr, accumulate, init); break;
      default: registerTile<1>(kc, ar, lda, b, ldb, cr, ldc, nr, accumulate, init); break;
    }
  }
}

}  // namespace cpu
}  // namespace mixattn
