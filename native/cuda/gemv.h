// Skinny GEMM (gemv.cu) for decode steps: D[M, N] = X[M, K] · W[N, K]ᵀ (+ bias[N]) with bf16
// X, W and bias, fp32 accumulation, D fp32 (dF32) or bf16. The backend uses it instead of
// cuBLASLt where gemvApplies(); MIXATTN_CUDA_GEMV=0 turns it off (for comparisons).
#pragma once

#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

constexpr int kGemvMaxRows = 8;

// M in 1..kGemvMaxRows, K a multiple of 8, x and w 16-byte aligned.
bool gemvApplies(const void* x, const void* w, int M, int K);

void gemv(const Ctx& c, void* d, bool dF32, const void* x, const void* w, const void* bias, int M,
          int N, int K);

}  // namespace cuda
}  // namespace mixattn
