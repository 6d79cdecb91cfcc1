// The compute backend interface. Implemented by native/cpu (always built) and native/cuda
// (built where nvcc and cuBLAS are found). The model runner (native/model) drives a whole
// forward step through these ops only, so a backend is a drop-in for another.
//
// Conventions
// - Activations live in backend memory, in the backend's activationDType() (f32 on the CPU).
// - Weights keep their storage dtype (f32 or bf16); math is fp32.
// - Linear weights are [out, in] row-major: out[M,N] = in[M,K] · W[N,K]ᵀ.
// - Every pointer an op receives points into backend memory (alloc/upload), host memory
//   for the CPU backend.
// - Bad input throws mixattn::Error; the bindings turn it into a JS exception.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mixattn {

enum class DType : int { F32 = 0, BF16 = 1 };

inline size_t dtypeSize(DType t) { return t == DType::F32 ? 4 : 2; }
inline const char* dtypeName(DType t) { return t == DType::F32 ? "f32" : "bf16"; }

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Activation : int { SiLU = 0, GeluTanh = 1 };

enum class RopeScaling : int { Default = 0, Linear = 1, Llama3 = 2 };

// Rotary embedding, HF "rotate_half" layout: dimension i pairs with i + headDim/2.
struct RopeParams {
  float theta = 10000.f;
  RopeScaling scaling = RopeScaling::Default;
  float factor = 1.f;           // linear and llama3
  float lowFreqFactor = 1.f;    // llama3
  float highFreqFactor = 4.f;   // llama3
  int originalMaxPosition = 8192;  // llama3
};

// The tokens of one forward step. Sequence s contributes the rows
// [tokenStart[s], tokenStart[s] + numNew[s]) at positions pastLen[s] + 0, 1, ...
// positions[] and seqOfToken[] repeat that per row so kernels can index by row.
struct BatchLayout {
  int numSeqs = 0;
  int numTokens = 0;
  const int32_t* tokenStart = nullptr;  // [numSeqs]
  const int32_t* numNew = nullptr;      // [numSeqs]
  const int32_t* pastLen = nullptr;     // [numSeqs]
  const int32_t* positions = nullptr;   // [numTokens]
  const int32_t* seqOfToken = nullptr;  // [numTokens]
};

// The paged KV cache of one owning layer as the append and attention ops see it.
//
// A cache class (owners with the same retention and widths) has one block table per
// sequence. Row s of `blockTables` holds, for each logical block b (tokens
// [b*blockSize, (b+1)*blockSize)), `pagesPerBlock` page ids: one per owner of the class.
// This layer's page is entry `slot`: page = blockTables[s*tableStride + b*pagesPerBlock + slot].
// Blocks a sliding class has already returned hold -1 and are never read.
//
// Page layout: K as [numKvHeads][blockSize][kDim], then V as [numKvHeads][blockSize][vDim],
// in `dtype`, starting at arena + page * pageBytes. Owners narrower than the page (low-rank
// K/V) share pages: the runner then points `arena` at the layer's region inside page 0, so
// that region may end before pageBytes does (docs/kv.md).
struct PagedKv {
  void* arena = nullptr;
  DType dtype = DType::F32;
  size_t pageBytes = 0;
  int numPages = 0;
  int blockSize = 16;
  int numKvHeads = 0;
  int kDim = 0;
  int vDim = 0;
  const int32_t* blockTables = nullptr;  // [numSeqs][tableStride]
  int tableStride = 0;
  int pagesPerBlock = 1;
  int slot = 0;
};

// The expansion of low-rank keys (attentionLowRankKeys): basis is U, [headDim][kDim] fp32
// row-major in backend memory (k[i] = sum_j U[i][j] c[j]); rope is the layer's RoPE.
struct KeyBasis {
  const float* basis = nullptr;
  int headDim = 0;
  RopeParams rope;
};

// One logits row's sampling policy (Backend::sample). Parameters are fp32 as the device reads
// them (the caller rounds doubles to nearest); "off" values leave the distribution as it is.
struct SampleRow {
  double uniform = 0;            // u in [0, 1): this step's draw, from the caller's seeded PRNG
  float temperature = 0;         // >= 0; 0 = greedy
  float topP = 1;                // (0, 1]; 1 = off
  float minP = 0;                // [0, 1]; 0 = off
  float repetitionPenalty = 1;   // > 0; 1 = off
  float presencePenalty = 0;     // finite; 0 = off
  float frequencyPenalty = 0;    // finite; 0 = off
  int32_t topK = 0;              // >= 0; 0 = off
  int32_t logprobs = 0;          // 1: report the chosen token's logprob (else NaN)
  int32_t topLogprobs = 0;       // [0, kMaxTopLogprobs]: report the n most likely tokens
  int32_t penaltyStart = 0;      // this row's penalty pairs: penalties[2*start, 2*(start+count))
  int32_t penaltyCount = 0;
  int32_t pad = 0;
};
static_assert(sizeof(SampleRow) == 56, "SampleRow is uploaded as is");

constexpr int kMaxTopLogprobs = 20;
// Integer token weights are < 2^31 + 1, so their sums stay exact in a double up to this vocab.
constexpr int kMaxSampleVocab = 1 << 22;

// Where Backend::sample writes, all in backend memory: per row the chosen token id (-1 when the
// row has no finite maximum), its logprob, and topStride (id, logprob) slots of which the
// first min(topLogprobs, non-NaN logits) are filled, most likely first (the rest: -1, NaN).
struct SampleOut {
  int32_t* ids = nullptr;        // [rows]
  float* logprobs = nullptr;     // [rows]
  int32_t* topIds = nullptr;     // [rows * topStride]
  float* topLogprobs = nullptr;  // [rows * topStride]
  int topStride = 0;             // >= every row's topLogprobs
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual DType activationDType() const = 0;

  // Memory. alloc throws Error naming `what` when memory runs out.
  virtual void* alloc(size_t bytes, const char* what) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // out[n, dim] = table[tokens[i]] * scale. Throws on a token outside [0, vocab).
  virtual void embedding(void* out, const int32_t* tokens, int n, const void* table,
                         DType tableType, int vocab, int dim, float scale) = 0;
  // out[rows, dim] = in / rms(in) * w. out may equal in.
  virtual void rmsnorm(void* out, const void* in, const void* w, DType wType, int rows,
                       int dim, float eps) = 0;
  // residual += delta; out = rmsnorm(residual) * w (fused residual add).
  virtual void addRmsnorm(void* out, void* residual, const void* delta, const void* w,
                          DType wType, int rows, int dim, float eps) = 0;
  // inout[i] += in[i]
  virtual void add(void* inout, const void* in, size_t n) = 0;
  // out[M, N] = in[M, K] · W[N, K]ᵀ (+ bias[N] when bias is not null; bias has W's dtype).
  virtual void matmul(void* out, const void* in, const void* w, DType wType, const void* bias,
                      int M, int N, int K) = 0;
  // Several weights applied to one input (a layer's q, k and v projections):
  // outs[j].out[M, outs[j].N] = in[M, K] · outs[j].wᵀ (+ outs[j].bias), all weights of wType.
  // Backends may run them as one kernel; this default runs matmul for each.
  struct MatmulOut {
    void* out = nullptr;
    const void* w = nullptr;
    const void* bias = nullptr;
    int N = 0;
  };
  virtual void matmulShared(const void* in, DType wType, int M, int K, const MatmulOut* outs,
                            int count) {
    for (int j = 0; j < count; ++j)
      matmul(outs[j].out, in, outs[j].w, wType, outs[j].bias, M, outs[j].N, K);
  }
  // The gated MLP's first half: out[M, I] = act(in · wGateᵀ) * (in · wUpᵀ). `scratch` ([M, I],
  // activation-typed) is where this default keeps the up projection; backends that fuse the
  // two GEMMs and the activation leave it alone.
  virtual void gatedMatmul(void* out, void* scratch, const void* in, const void* wGate,
                           const void* wUp, DType wType, int M, int I, int K, Activation act) {
    matmul(out, in, wGate, wType, nullptr, M, I, K);
    matmul(scratch, in, wUp, wType, nullptr, M, I, K);
    gatedActivation(out, out, scratch, M, I, act);
  }
  // out[rows, dim] = in[index[i], dim] (row gather, e.g. the rows that need logits).
  virtual void gatherRows(void* out, const void* in, const int32_t* index, int rows, int dim) = 0;
  // Rotary embedding in place on x[T, heads, headDim] with rows at positions[T].
  virtual void rope(void* x, const int32_t* positions, int T, int heads, int headDim,
                    const RopeParams& p) = 0;
  // out[T, I] = act(gate[T, I]) * up[T, I]
  virtual void gatedActivation(void* out, const void* gate, const void* up, int T, int I,
                               Activation act) = 0;
  // Writes k[T, numKvHeads, kDim] and v[T, numKvHeads, vDim] into the pages of their
  // positions. Throws on a missing (-1) or out-of-range page id.
  virtual void appendKv(const PagedKv& kv, const BatchLayout& batch, const void* k,
                        const void* v) = 0;
  // RoPE on the new keys fused with their append: the same pages as rope(k, positions, T,
  // numKvHeads, kDim, p) followed by appendKv(kv, batch, k, v). k's contents afterwards are
  // unspecified (a fused kernel rotates on the way to the page). This default is the CPU
  // twin; backends override it to save a pass over k.
  virtual void ropeAppendKv(const PagedKv& kv, const BatchLayout& batch, void* k, const void* v,
                            const RopeParams& p) {
    rope(k, batch.positions, batch.numTokens, kv.numKvHeads, kv.kDim, p);
    appendKv(kv, batch, k, v);
  }
  // ropeAppendKv, and RoPE in place on the layer's queries q[T, numHeads, kDim] (numHeads a
  // positive multiple of numKvHeads) exactly as rope(q, positions, T, numHeads, kDim, p):
  // q and k share their angles, so a backend can rotate both in one pass (CUDA: one launch
  // instead of two per layer). This default is the CPU twin.
  virtual void ropeQAppendKv(void* q, int numHeads, const PagedKv& kv, const BatchLayout& batch,
                             void* k, const void* v, const RopeParams& p) {
    rope(q, batch.positions, batch.numTokens, numHeads, kv.kDim, p);
    ropeAppendKv(kv, batch, k, v, p);
  }
  // ropeQAppendKv, then attention() over the same cache: an owner layer's append and
  // attention in one call, so that a backend can fuse them (CUDA: in a decode step the
  // attention kernel rotates q and the new keys and writes the new K/V rows itself, one launch
  // per layer less). Same results; q's contents afterwards are unspecified (rotated or not).
  // Every sequence of `batch` brings at least one row (as ModelRunner::validateStep ensures):
  // the fusion takes numTokens == numSeqs to mean one new row each. This default is the CPU
  // twin.
  virtual void ropeAppendAttention(void* out, void* q, int numHeads, const PagedKv& kv,
                                   const BatchLayout& batch, void* k, const void* v,
                                   const RopeParams& p, int window, float scale, float softcap) {
    ropeQAppendKv(q, numHeads, kv, batch, k, v, p);
    attention(out, q, kv, batch, numHeads, window, scale, softcap);
  }
  // q is [T, numHeads, kDim]; out[T, numHeads, vDim] = softmax(q·kᵀ * scale, soft-capped) · v over the cached keys of
  // each row's sequence at positions [max(0, p - window + 1), p] (window 0 = global: [0, p]).
  // GQA: query head h reads KV head h / (numHeads / numKvHeads).
  virtual void attention(void* out, const void* q, const PagedKv& kv, const BatchLayout& batch,
                         int numHeads, int window, float scale, float softcap) = 0;
  // Eigen Attention (low-rank keys): the cache holds, per key and KV head, c[kv.kDim]
  // coefficients of the pre-RoPE key in a basis U shared by the layer's KV heads. Scores use
  // k = rope(U · c, key position), expanded inside the kernel (full-width keys never reach
  // memory). q is [T, numHeads, keys.headDim], already rotated; out is [T, numHeads, kv.vDim]
  // (V may be low-rank too: the output then stays at rank vDim until W_o). Otherwise as
  // attention().
  virtual void attentionLowRankKeys(void* out, const void* q, const PagedKv& kv,
                                    const BatchLayout& batch, int numHeads, int window,
                                    float scale, float softcap, const KeyBasis& keys) {
    (void)out, (void)q, (void)kv, (void)batch, (void)numHeads, (void)window, (void)scale,
        (void)softcap, (void)keys;
    throw Error(std::string(name()) + " backend: attention with low-rank keys is not implemented");
  }
  // out[M, V] (fp32) = hidden[M, K] · W[V, K]ᵀ, then cap·tanh(x/cap) when softcap > 0.
  virtual void logits(float* out, const void* hidden, const void* w, DType wType, int M, int V,
                      int K, float softcap) = 0;
  // out[r] (int32, backend memory) = the index of the largest of logits[r, 0..vocab) (fp32),
  // the lowest index among equal maxima, NaN never chosen; 0 when nothing beats -inf. Greedy
  // decoding's token ids without moving the logits to the host.
  virtual void argmax(int32_t* out, const float* logits, int rows, int vocab) = 0;

  // Samples one token per row of logits[rows, vocab] (fp32) by the rule below, where the logits
  // are, so only ids and requested logprobs cross to the host. lib/sampling/reduce.ts is the
  // TypeScript twin of the same rule; the three agree bit for bit on the token for the same u.
  //  0. Penalties (in place: the logits are penalised): for each (id, count) pair of the row,
  //     distinct ids, in fp32 steps: v = x; if rep != 1: v = v < 0 ? v*rep : v/rep; if
  //     count > 0 and (presence or frequency != 0): v = v - (count*frequency + presence).
  //  1. m = the largest logit that is not NaN; m not finite: id -1 (the caller reports it).
  //     Candidates C0: the finite logits.
  //  2. Greedy (temperature 0): the lowest index with y = m (as argmax).
  //  3. Else invT = 1/T; s = (y - m)*invT (0 at m); w = expWeight(s) (common/sample_math.h),
  //     exactly 1 at m; integer weight q = floor(w * 2^31).
  //  4. top-k (0 < k < |C0|): C1 = {y >= the k-th largest y of C0} (ties kept).
  //  5. top-p (< 1): need = ceil(topP * sum_C1 q) (double); theta = the largest integer weight
  //     with sum_{C1, q >= theta} q >= need; keep q >= theta (ties kept).
  //  6. min-p (> 0): keep w >= minP (p/p_max >= minP: w_max = 1).
  //  7. K = what 4-6 keep; S = sum_K q; t = min(floor(u*S), S - 1) (double); the token is the
  //     first of K in index order whose running sum of q exceeds t.
  // Logprobs: s_i - log(sum_C0 w) (T = 1 when greedy): log-softmax of the penalised logits
  // over the whole vocabulary, before truncation. Top logprobs: the largest logits, ties by
  // lower index, NaN never. `penalties` holds (id, count) int32 pairs in backend memory; the
  // caller validates rows and pairs (checkSampleInputs, common/sample_check.h); vocab <=
  // kMaxSampleVocab.
  virtual void sample(const SampleOut& out, float* logits, const SampleRow* rows,
                      const int32_t* penalties, int numRows, int vocab) = 0;

  // Graph capture (CUDA graphs): the ops issued between beginCapture() and endCapture() are
  // recorded, not run, into a graph that replay() runs again with the same pointers and launch
  // configurations (so the caller keeps every buffer they use at a fixed address and writes
  // new inputs into them before each replay). Backends that cannot capture keep these
  // defaults: canCapture() false, and the runner never calls the others.
  virtual bool canCapture() const { return false; }
  virtual void beginCapture() { throw Error(std::string(name()) + " backend cannot capture graphs"); }
  // Ends the capture and returns the instantiated graph; throws (capture ended, nothing kept)
  // when an op during the capture failed or was not capturable.
  virtual void* endCapture() { throw Error(std::string(name()) + " backend cannot capture graphs"); }
  // Ends a capture that an op's exception interrupted; discards what was recorded.
  virtual void cancelCapture() {}
  virtual void replay(void* /*graph*/) {}
  virtual void releaseGraph(void* /*graph*/) {}
};

}  // namespace mixattn
