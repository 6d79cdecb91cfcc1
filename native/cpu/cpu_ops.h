// Internal to the CPU backend: the ops as free functions over a thread pool (so each file
// stays small and the check programs can call them directly), plus the row helpers they share.
// All activations are f32; weights and KV are f32 or bf16; all math is fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.h"
#include "cpu/bf16.h"
#include "cpu/thread_pool.h"

namespace mixattn {
namespace cpu {

// Widens n elements to f32 (the loops are plain so the compiler vectorises them).
inline void toFloat(float* __restrict dst, const void* src, DType t, size_t n) {
  if (t == DType::F32) {
    const float* s = static_cast<const float*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = s[i];
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = bf16ToFloat(s[i]);
  }
}

// Narrows n f32 elements to `t` (bf16: round to nearest even).
inline void fromFloat(void* dst, DType t, const float* __restrict src, size_t n) {
  if (t == DType::F32) {
    float* d = static_cast<float*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = src[i];
  } else {
    uint16_t* d = static_cast<uint16_t*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = floatToBf16(src[i]);
  }
}

// Elementwise ops (ops_elementwise.cc).
void embedding(ThreadPool& pool, float* out, const int32_t* tokens, int n, const void* table,
               DType tableType, int vocab, int dim, float scale);
void rmsnorm(ThreadPool& pool, float* out, const float* in, const void* w, DType wType,
             int rows, int dim, float eps);
void addRmsnorm(ThreadPool& pool, float* out, float* residual, const float* delta,
                const void* w, DType wType, int rows, int dim, float eps);
void add(ThreadPool& pool, float* inout, const float* in, size_t n);
void gatherRows(ThreadPool& pool, float* out, const float* in, const int32_t* index, int rows,
                int dim);
void gatedActivation(ThreadPool& pool, float* out, const float* gate, const float* up, int T,
                     int I, Activation act);

// Rotary embedding (ops_rope.cc).
void rope(ThreadPool& pool, float* x, const int32_t* positions, int T, int heads, int headDim,
          const RopeParams& p);

// Linear layers (ops_matmul.cc).
void matmul(ThreadPool& pool, float* out, const float* in, const void* w, DType wType,
            const void* bias, int M, int N, int K);
void logits(ThreadPool& pool, float* out, const float* hidden, const void* w, DType wType,
            int M, int V, int K, float softcap);

// Paged KV (ops_attention.cc).
void appendKv(ThreadPool& pool, const PagedKv& kv, const BatchLayout& batch, const float* k,
              const float* v);
void attention(ThreadPool& pool, float* out, const float* q, const PagedKv& kv,
               const BatchLayout& batch, int numHeads, int window, float scale, float softcap);
void attentionLowRankKeys(ThreadPool& pool, float* out, const float* q, const PagedKv& kv,
                          const BatchLayout& batch, int numHeads, int window, float scale,
                          float softcap, const KeyBasis& keys);

// Sampling (ops_sampling.cc): Backend::sample's rule, one row per pool chunk.
void sample(ThreadPool& pool, const SampleOut& out, float* logits, const SampleRow* rows,
            const int32_t* penalties, int numRows, int vocab);

}  // namespace cpu
}  // namespace mixattn
