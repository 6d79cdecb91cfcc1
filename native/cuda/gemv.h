// Skinny GEMM (gemv.cu) for decode steps: D[M, N] = X[M, K] · W[N, K]ᵀ (+ bias[N]) with bf16
// X, W and bias, fp32 accumulation, D fp32 (dF32) or bf16. The backend uses it instead of
// cuBLASLt where gemvApplies(); MIXATTN_CUDA_GEMV=0 turns it off (for comparisons).
// W (and bias) are read before gridDepWait (launch.cuh): they must be weights, written only by
// uploads, never by a kernel earlier on the stream.
#pragma once

#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

constexpr int kGemvMaxRows = 8;

// M in 1..kGemvMaxRows, K a multiple of 8, x and w 16-byte aligned.
bool gemvApplies(const void* x, const void* w, int M, int K);

void gemv(const Ctx& c, void* d, bool dF32, const void* x, const void* w, const void* bias, int M,
          int N, int K);

// Backend::matmulShared on the skinny GEMM: up to 3 weights per launch (bf16 outputs).
void gemvShared(const Ctx& c, const void* x, int M, int K, const Backend::MatmulOut* outs,
                int count);

// Backend::gatedMatmul fused: both GEMMs and the activation in one kernel.
void gatedGemv(const Ctx& c, void* out, const void* x, const void* wGate, const void* wUp, int M,
               int I, int K, Activation act);

}  // namespace cuda
}  // namespace mixattn
