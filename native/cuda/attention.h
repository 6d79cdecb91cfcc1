// Host entry point of the CUDA attention (attention.cc): validates, picks a kernel, launches.
#pragma once

#include <functional>

#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

enum class AttnPath : int { Auto = 0, Generic = 1, Decode = 2, Prefill = 3 };

// `scratch(bytes)` returns device memory the kernels may use until the next op.
void attention(const Ctx& c, void* out, const void* q, const PagedKv& kv,
               const BatchLayout& batch, int numHeads, int window, float scale, float softcap,
               const std::function<float*(size_t)>& scratch);

// Backend::ropeAppendAttention fused, where it applies: every row its sequence's one new token
// (a decode step), bf16 pages, kDim == vDim in {64, 128, 256}, no forced path, 16-byte aligned
// k and v [T, numKvHeads, kDim]. The decode kernel then rotates q (left unrotated in memory)
// and the new keys itself and writes the new K/V rows to the pages (AttnArgs::newK): one
// launch per layer instead of two. False, having done nothing, where it does not apply.
bool attentionDecodeAppend(const Ctx& c, void* out, const void* q, const PagedKv& kv,
                           const BatchLayout& batch, int numHeads, int window, float scale,
                           float softcap, const void* k, const void* v, const double* invFreq,
                           const std::function<float*(size_t)>& scratch);

// The path setAttentionPath forced (Auto when none).
AttnPath forcedAttentionPath();
// False after setAttentionPath("decode:combine"): split-KV decode launches leave the merge to
// the combine kernel instead of their last blocks (split_merge.cuh; tests compare the two).
bool fusedSplitMerge();
// Keys one row can attend to: its table row's positions, at most the window.
int maxKeysOf(const PagedKv& kv, int window);

// attention_lowrank.cc. The device tables of a layer's low-rank keys (the backend caches
// invFreq and rot per RoPE parameters and head dim).
struct LowRankKeysDev {
  const float* basis;     // U [headDim][kDim] fp32
  int headDim;
  const double* invFreq;  // [headDim / 2]
  const float* rot;       // [kLowRankRotRows][headDim / 2][cos, sin] of j·θ_i
};
void attentionLowRankKeys(const Ctx& c, void* out, const void* q, const PagedKv& kv,
                          const BatchLayout& batch, int numHeads, int window, float scale,
                          float softcap, const LowRankKeysDev& keys, AttnPath path,
                          const std::function<float*(size_t)>& scratch);
// attention() with V narrower than K (kDim in {64, 128, 256}, vDim a multiple of 8) on the
// low-rank kernels with plain keys.
bool narrowValuesSupported(const Ctx& c, const AttnArgs& a);
void attentionNarrowValues(const Ctx& c, const AttnArgs& a, bool prefill, bool forced,
                           const std::function<float*(size_t)>& scratch);

}  // namespace cuda
}  // namespace mixattn
