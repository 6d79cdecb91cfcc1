// The CPU Backend object: memory is plain host memory (64-byte aligned so rows start on a
// cache line), and each op forwards to its free function in ops_*.cc on the backend's pool.
#include "cpu/cpu_backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "cpu/cpu_ops.h"
#include "cpu/thread_pool.h"

namespace mixattn {
namespace {

using namespace cpu;

constexpr size_t kAlign = 64;

int resolveThreads(int threads) {
  if (threads > 0) return threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? int(hw) : 1;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(resolveThreads(threads)) {}

  const char* name() const override { return "cpu"; }
  DType activationDType() const override { return DType::F32; }

  void* alloc(size_t bytes, const char* what) override {
    // aligned_alloc wants a multiple of the alignment; 0 bytes still gets a real block.
    size_t rounded = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = rounded >= bytes ? std::aligned_alloc(kAlign, rounded) : nullptr;
    if (!p)
      throw Error(std::string("out of memory allocating ") + (what ? what : "buffer") + " (" +
                  std::to_string(bytes) + " bytes)");
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void synchronize() override {}

  void embedding(void* out, const int32_t* tokens, int n, const void* table, DType tableType,
                 int vocab, int dim, float scale) override {
    cpu::embedding(pool_, f(out), tokens, n, table, tableType, vocab, dim, scale);
  }
  void rmsnorm(void* out, const void* in, const void* w, DType wType, int rows, int dim,
               float eps) override {
    cpu::rmsnorm(pool_, f(out), cf(in), w, wType, rows, dim, eps);
  }
  void addRmsnorm(void* out, void* residual, const void* delta, const void* w, DType wType,
                  int rows, int dim, float eps) override {
    cpu::addRmsnorm(pool_, f(out), f(residual), cf(delta), w, wType, rows, dim, eps);
  }
  void add(void* inout, const void* in, size_t n) override { cpu::add(pool_, f(inout), cf(in), n); }
  void matmul(void* out, const void* in, const void* w, DType wType, const void* bias, int M,
              int N, int K) override {
    cpu::matmul(pool_, f(out), cf(in), w, wType, bias, M, N, K);
  }
  void gatherRows(void* out, const void* in, const int32_t* index, int rows, int dim) override {
    cpu::gatherRows(pool_, f(out), cf(in), index, rows, dim);
  }
  void rope(void* x, const int32_t* positions, int T, int heads, int headDim,
            const RopeParams& p) override {
    cpu::rope(pool_, f(x), positions, T, heads, headDim, p);
  }
  void gatedActivation(void* out, const void* gate, const void* up, int T, int I,
                       Activation act) override {
    cpu::gatedActivation(pool_, f(out), cf(gate), cf(up), T, I, act);
  }
  void appendKv(const PagedKv& kv, const BatchLayout& batch, const void* k,
                const void* v) override {
    cpu::appendKv(pool_, kv, batch, cf(k), cf(v));
  }
  void attention(void* out, const void* q, const PagedKv& kv, const BatchLayout& batch,
                 int numHeads, int window, float scale, float softcap) override {
    cpu::attention(pool_, f(out), cf(q), kv, batch, numHeads, window, scale, softcap);
  }
  void attentionLowRankKeys(void* out, const void* q, const PagedKv& kv,
                            const BatchLayout& batch, int numHeads, int window, float scale,
                            float softcap, const KeyBasis& keys) override {
    cpu::attentionLowRankKeys(pool_, f(out), cf(q), kv, batch, numHeads, window, scale, softcap,
                              keys);
  }
  void logits(float* out, const void* hidden, const void* w, DType wType, int M, int V, int K,
              float softcap) override {
    cpu::logits(pool_, out, cf(hidden), w, wType, M, V, K, softcap);
  }
  void argmax(int32_t* out, const float* logits, int rows, int vocab) override {
    for (int r = 0; r < rows; ++r) {
      const float* x = logits + size_t(r) * vocab;
      float best = -INFINITY;
      int32_t at = 0;
      for (int i = 0; i < vocab; ++i)
        if (x[i] > best) best = x[i], at = i;  // NaN and ties never replace
      out[r] = at;
    }
  }
  void sample(const SampleOut& out, float* logits, const SampleRow* rows, const int32_t* penalties,
              int numRows, int vocab) override {
    cpu::sample(pool_, out, logits, rows, penalties, numRows, vocab);
  }

 private:
  static float* f(void* p) { return static_cast<float*>(p); }
  static const float* cf(const void* p) { return static_cast<const float*>(p); }

  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> createCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace mixattn
