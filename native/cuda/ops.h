// The CUDA backend's kernels as host functions (defined in the .cu files), so the backend
// object (cuda_backend.cc) and the cuBLASLt code are plain C++. Every function enqueues on
// ctx.stream and returns at once; launch errors throw mixattn::Error naming the op. Errors
// that depend on device data (token ids, page ids) are recorded in ctx.err and thrown by the
// next download or synchronize (device_error.h).
//
// Activations are bf16 (void* here so this header needs no CUDA types); weights and KV pages
// are f32 or bf16 as their DType says; math is fp32.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend.h"
#include "cuda/device_error.h"

namespace mixattn {
namespace cuda {

struct Ctx {
  cudaStream_t stream = nullptr;
  DeviceError* err = nullptr;  // device memory
  int numSMs = 1;
  size_t maxSmem = 48 * 1024;  // dynamic shared memory a block may opt in to
  // Programmatic dependent launch for the kernels of launch.cuh's launchKernel (sm_90+,
  // unless MIXATTN_CUDA_PDL=0).
  bool pdl = false;
  // Arrival counters of the decode kernels' fused split merge (split_merge.cuh): device memory,
  // zero between launches.
  unsigned* splitCounters = nullptr;
  size_t numSplitCounters = 0;
};

// Throws Error("<op>: CUDA error: ...") when the last launch (or `e`) failed.
void checkLaunch(const char* op);
void check(cudaError_t e, const char* op);

// ops_elementwise.cu
void embedding(const Ctx& c, void* out, const int32_t* tokens, int n, const void* table,
               DType tableType, int vocab, int dim, float scale);
void rmsnorm(const Ctx& c, void* out, const void* in, const void* w, DType wType, int rows,
             int dim, float eps);
void addRmsnorm(const Ctx& c, void* out, void* residual, const void* delta, const void* w,
                DType wType, int rows, int dim, float eps);
void add(const Ctx& c, void* inout, const void* in, size_t n);
void gatherRows(const Ctx& c, void* out, const void* in, const int32_t* index, int rows, int dim);
void gatedActivation(const Ctx& c, void* out, const void* gate, const void* up, size_t n,
                     Activation act);
void softcapInPlace(const Ctx& c, float* x, size_t n, float cap);
// ops_sampling.cu: out[r] = argmax of logits[r, 0..vocab) (Backend::argmax's rules).
void argmax(const Ctx& c, int32_t* out, const float* logits, int rows, int vocab);
// ops_sampling.cu: Backend::sample; weights: [numRows, vocab] fp32 device scratch.
void sample(const Ctx& c, const SampleOut& out, float* logits, float* weights,
            const SampleRow* rows, const int32_t* penalties, int numRows, int vocab);
void bf16ToF32(const Ctx& c, float* dst, const void* src, size_t n);
void f32ToBf16(const Ctx& c, void* dst, const float* src, size_t n);

// ops_rope_kv.cu. invFreq: headDim/2 doubles in device memory (computed on the host).
void rope(const Ctx& c, void* x, const int32_t* positions, int T, int heads, int headDim,
          const double* invFreq);
void appendKv(const Ctx& c, const PagedKv& kv, const BatchLayout& batch, const void* k,
              const void* v);
// appendKv with RoPE applied to k on the way to the page (k itself is left as it was); with q,
// q[T, numHeads, kDim] is rotated in place in the same launch, as rope() would.
void ropeAppendKv(const Ctx& c, const PagedKv& kv, const BatchLayout& batch, const void* k,
                  const void* v, const double* invFreq, void* q = nullptr, int numHeads = 0);

// Everything an attention kernel reads, by value (it is a kernel parameter).
struct AttnArgs {
  void* out;
  const void* q;
  const char* arena;
  size_t pageBytes;
  int numPages, blockSize, numKvHeads, kDim, vDim;
  DType kvType;
  const int32_t* tables;
  int tableStride, pagesPerBlock, slot;
  int bsShift;  // log2(blockSize) when it is a power of two (the usual 16), else -1
  int numSeqs, numTokens;
  const int32_t *tokenStart, *numNew, *pastLen, *positions, *seqOfToken;
  int numHeads, window;
  float scale, softcap;
  int maxKeys;  // host-side upper bound on the keys one row attends to
  // The decode kernel's fused append (attentionDecodeAppend): every row is its sequence's one
  // new token, q arrives unrotated, and the kernel rotates q and the new key (RoPE with these
  // inverse frequencies) and writes the new K/V rows [T, numKvHeads, kDim] to their pages
  // itself. Null otherwise.
  const void* newK = nullptr;  // bf16
  const void* newV = nullptr;
  const double* ropeInvFreq = nullptr;
};

// The view of a layer's paged KV and the step's rows that the kernels take (attention.cc);
// out/q/numHeads/window/scale/softcap/maxKeys are left for the caller to fill.
AttnArgs kvArgs(const PagedKv& kv, const BatchLayout& batch);
// kvArgs with everything an attention call fills (attention and attentionLowRankKeys).
AttnArgs attentionArgs(const PagedKv& kv, const BatchLayout& batch, void* out, const void* q,
                       int numHeads, int window, float scale, float softcap);
// Split-KV: the smallest split count (at most min(tiles, 256)) whose waves of
// `blocks × splits` blocks on `slots` resident slots are 95% full, or within 2% of the fullest
// possible.
long long waveFillSplits(long long blocks, long long slots, long long tiles);

// attn_generic.cu: any kDim, vDim <= 1024, f32 or bf16 KV. One block per (row, head).
void attentionGeneric(const Ctx& c, const AttnArgs& a);
// attn_decode.cu: split-KV flash-decoding for kDim == vDim in {64, 128, 256}; any rows.
bool decodeSupported(const Ctx& c, const AttnArgs& a);
// Scratch the decode path needs (0 when it needs none); `splits` gets the split count.
size_t decodeScratchBytes(const Ctx& c, const AttnArgs& a, int* splits);
// fused: the last block of each (row, group) merges the splits (split_merge.cuh) where it can.
void attentionDecode(const Ctx& c, const AttnArgs& a, int splits, float* scratch, bool fused);
// attn_decode_mma.cu: the bf16-page decode kernel attentionDecode uses (tensor cores), 64-key
// tiles; partial results as attn_decode.cu's combine kernel reads them, or merged by the
// kernel's last block of each (row, group) with `counters` (split_merge.cuh; nullptr: not).
size_t decodeMmaSmem(int headDim);
int decodeMmaBlocksPerSM(int headDim);  // resident blocks per SM (occupancy API)
int decodeMmaHeadsPerBlock(int G);      // query heads of a G-head group per block (<= 16)
void attentionDecodeMma(const Ctx& c, const AttnArgs& a, int splits, int chunk, float* partO,
                        float* partLse, unsigned* counters);
// attn_lowrank_{64,128,256}.cu (attn_lowrank.cuh): attention whose keys are expanded from
// low-rank coefficients inside the kernel (Backend::attentionLowRankKeys), or, with
// expand = false, plain keys of width headDim with V narrower (attention() with vDim < kDim).
// Head dims 64/128/256, kDim and vDim multiples of 8 (kDim <= 256, vDim <= headDim), f32 or
// bf16 pages. attention_lowrank.cc plans and launches them.
constexpr int kLowRankTileKeys = 64;  // keys per tile
constexpr int kLowRankRotRows = 16;   // rows of the rotation table: cos/sin(j·θ_i), j < 16
struct LowRankArgs {
  const float* basis;      // U [headDim][kDim] fp32 (expand only)
  const double* invFreq;   // RoPE inverse frequencies [headDim / 2] (expand only)
  const float* rot;        // [kLowRankRotRows][headDim / 2][cos, sin] (expand only)
  int op;                  // ErrOp naming the op in page errors
};
struct LowRankPlan {
  bool prefill;  // 64 query vectors (rows x heads) per block, else one row and <= 8 heads
  bool expand;   // low-rank keys (else plain keys)
  int HC, R, splits, chunk, stages;
  size_t smem;
  unsigned gridX;  // prefill: row-tile items
  float *partO, *partLse;
  unsigned* counters;  // decode layout: its last blocks merge the splits (split_merge.cuh)
  const char* opName;
};
int lowRankBlocksPerSM64(const AttnArgs& a, const LowRankPlan& p);
int lowRankBlocksPerSM128(const AttnArgs& a, const LowRankPlan& p);
int lowRankBlocksPerSM256(const AttnArgs& a, const LowRankPlan& p);
void launchLowRank64(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p);
void launchLowRank128(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p);
void launchLowRank256(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p);
// attn_decode.cu: out[r, 0..width) = the splits' partial results merged by their log-sum-exp
// (partO [rows][splits][width], partLse [rows][splits]), as bf16: the combine kernel, for the
// launches that do not merge in their last block (split_merge.cuh).
void combineSplits(const Ctx& c, void* out, const float* partO, const float* partLse,
                   size_t rows, int splits, int width);
// The arrival counters for a split-KV decode launch of rows × groups blocks per split, each
// merging nh heads with `smem` bytes of dynamic shared memory, or nullptr where combineSplits
// must merge (one split, too few counters or too little shared memory, or !fused).
unsigned* splitMergeCounters(const Ctx& c, int splits, long long rows, long long groups, int nh,
                             size_t smem, bool fused);
// attn_prefill_*.cu: FlashAttention-2 on tensor cores, bf16 KV, kDim == vDim in {64,128,256}.
// `variant` picks one of the kernel configurations a head dim compiles (tests, benchmarks);
// < 0 or out of range: the default.
bool prefillSupported(const Ctx& c, const AttnArgs& a);
void attentionPrefill64(const Ctx& c, const AttnArgs& a, int variant);
void attentionPrefill128(const Ctx& c, const AttnArgs& a, int variant);
void attentionPrefill256(const Ctx& c, const AttnArgs& a, int variant);

}  // namespace cuda
}  // namespace mixattn
