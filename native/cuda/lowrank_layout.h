// The shared-memory layout of the low-rank attention kernels (attn_lowrank.cuh), in a plain
// header so the host code (attention_lowrank.cc) sizes launches with the offsets the kernels
// use. Rows are padded by 16 bytes, so ldmatrix's 8 rows of 16 bytes fall on distinct banks
// whatever the row width (a multiple of 32 bytes).
#pragma once

#include <cstddef>

#include "cuda/ops.h"

#ifdef __CUDACC__
#define MIXATTN_HOST_DEVICE __host__ __device__
#else
#define MIXATTN_HOST_DEVICE
#endif

namespace mixattn {
namespace cuda {

struct LrSmem {
  int kc, ldc, vPad, ldv, ldq, ldu, ldk, ldr;  // elements
  size_t q, u, stage, stageBytes, k, base, rot, page, total;  // bytes
  // D: head dim; prefill: 64 query rows (else 8); expand: low-rank keys (U, expanded tile,
  // angles), else plain keys of width D; stages: K/V tiles in flight (2, or 1 where two do
  // not fit: the widest ranks at head dim 256).
  MIXATTN_HOST_DEVICE LrSmem(int D, bool prefill, bool expand, int kDim, int vDim, int stages) {
    const int BM = prefill ? 64 : 8;
    kc = expand ? (kDim + 15) / 16 * 16 : D;  // key width in shared memory (zero-padded)
    ldc = kc + 8;
    vPad = (vDim + 15) / 16 * 16;
    ldv = vPad + 8;
    ldq = D + 8;
    ldu = kc + 8;
    ldk = D + 8;
    ldr = D / 2 + 8;  // rotation table rows (float2): 64 bytes of padding
    size_t off = 0;
    q = off, off += size_t(BM) * ldq * 2;
    u = off, off += expand ? size_t(D) * ldu * 2 : 0;
    stage = off, stageBytes = size_t(kLowRankTileKeys) * (ldc + ldv) * 2, off += stages * stageBytes;
    k = off, off += expand && prefill ? size_t(kLowRankTileKeys) * ldk * 2 : 0;
    base = off, off += expand ? size_t(4) * (D / 2) * 8 : 0;
    rot = off, off += expand ? size_t(kLowRankRotRows) * ldr * 8 : 0;
    page = off, off += 2 * kLowRankTileKeys * 4;
    total = off;
  }
};

}  // namespace cuda
}  // namespace mixattn
