// The CUDA Backend object: device memory, the stream, the device error record, the cuBLASLt
// GEMMs and a scratch buffer; each op forwards to its kernel launcher (ops.h).
//
// Matmul with f32 weights: the backend stores weights as given (the interface has no
// conversion hook), so an f32 weight runs as an fp32 GEMM: the bf16 input is widened into
// scratch, multiplied in full fp32 (no TF32), and the result rounded to bf16. bf16 weights
// (the deployment case) run as bf16 GEMMs with fp32 accumulation.
#include "cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/gemm.h"
#include "cuda/gemv.h"
#include "common/paged_kv_check.h"
#include "common/rope_freq.h"
#include "cuda/ops.h"

namespace mixattn {

namespace {

using namespace cuda;

cudaDataType cudaType(DType t) { return t == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }

// Programmatic dependent launch (launch.cuh) where the device has it, unless
// MIXATTN_CUDA_PDL=0 (or off): for comparisons, and a way out should a driver mishandle it.
bool pdlWanted() {
  const char* e = std::getenv("MIXATTN_CUDA_PDL");
  return !(e && (std::string(e) == "0" || std::string(e) == "off"));
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    int count = 0;
    check(cudaGetDeviceCount(&count), "cuda backend");
    if (device < 0 || device >= count)
      throw Error("cuda backend: device " + std::to_string(device) + " does not exist (" +
                  std::to_string(count) + " found)");
    check(cudaSetDevice(device), "cuda backend");
    cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, device), "cuda backend");
    ctx_.numSMs = prop.multiProcessorCount;
    ctx_.maxSmem = prop.sharedMemPerBlockOptin;
    ctx_.pdl = prop.major >= 9 && pdlWanted();
    if (prop.major < 8)
      throw Error("cuda backend: " + std::string(prop.name) + " is sm_" +
                  std::to_string(prop.major * 10 + prop.minor) + "; sm_80 or newer is needed");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cuda backend");
    ctx_.stream = stream_;
    try {
      check(cudaMalloc(&ctx_.err, sizeof(DeviceError)), "cuda backend");
      // The decode kernels' split-merge counters (split_merge.cuh): zero from here on, each
      // reset by the block that used it. Enough for 256 rows of 256 head groups; a launch
      // that needs more merges with the combine kernel.
      ctx_.numSplitCounters = size_t(1) << 16;
      check(cudaMalloc(&ctx_.splitCounters, ctx_.numSplitCounters * sizeof(unsigned)), "cuda backend");
      check(cudaMemsetAsync(ctx_.splitCounters, 0, ctx_.numSplitCounters * sizeof(unsigned), stream_),
            "cuda backend");
      // On our stream, and waited for: a cudaMemset runs on the legacy stream, which a
      // non-blocking stream does not wait for.
      check(cudaMemsetAsync(ctx_.err, 0, sizeof(DeviceError), stream_), "cuda backend");
      check(cudaStreamSynchronize(stream_), "cuda backend");
      check(cudaMallocHost(&errHost_, sizeof(DeviceError)), "cuda backend");
      *errHost_ = DeviceError{};
      check(cudaMallocHost(&upStage_, kUploadStageBytes), "cuda backend");
      check(cudaMallocHost(&downStage_, kDownloadStageBytes), "cuda backend");
      gemm_ = std::make_unique<Gemm>();
    } catch (...) {
      freeAll();
      throw;
    }
  }
  ~CudaBackend() override {
    bind();
    cudaStreamSynchronize(stream_);
    freeAll();
  }

  const char* name() const override { return "cuda"; }
  DType activationDType() const override { return DType::BF16; }

  void* alloc(size_t bytes, const char* what) override {
    bind();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(std::string("out of GPU memory allocating ") + (what ? what : "buffer") + " (" +
                  std::to_string(bytes) + " bytes)");
    }
    check(e, "alloc");
    return p;
  }
  void release(void* p) override {
    bind();
    if (p) cudaFree(p);  // cudaFree waits for work in flight that may still use p
  }
  // Small copies (a step's metadata, token ids) go through pinned staging buffers: a copy from
  // pageable memory costs the driver its own staging (~15 µs for a step's block tables), and
  // a pageable download blocks until the stream has reached it. Either way the caller may free
  // or reuse `src` as soon as upload returns.
  void upload(void* dst, const void* src, size_t bytes) override {
    bind();
    if (!bytes) return;
    if (bytes > kUploadStageBytes || capturing_) {  // a captured copy would replay the stage
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
      return;
    }
    // The stage is a bump region: copies queued since the last synchronize may still read it.
    if (upStageUsed_ + bytes > kUploadStageBytes) {
      check(cudaStreamSynchronize(stream_), "upload");
      upStageUsed_ = 0;
    }
    char* stage = static_cast<char*>(upStage_) + upStageUsed_;
    std::memcpy(stage, src, bytes);
    upStageUsed_ += (bytes + 255) / 256 * 256;
    check(cudaMemcpyAsync(dst, stage, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    bind();
    if (bytes > kDownloadStageBytes) {
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
      synchronize();
      return;
    }
    // Both copies (the data, then the error record) queued, then one wait.
    if (bytes)
      check(cudaMemcpyAsync(downStage_, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    synchronize();
    if (bytes) std::memcpy(dst, downStage_, bytes);
  }
  void synchronize() override {
    bind();
    check(cudaMemcpyAsync(errHost_, ctx_.err, sizeof(DeviceError), cudaMemcpyDeviceToHost, stream_),
          "synchronize");
    check(cudaStreamSynchronize(stream_), "synchronize");
    upStageUsed_ = 0;  // every staged upload has landed
    if (errHost_->code != kErrNone) {
      const DeviceError e = *errHost_;
      *errHost_ = DeviceError{};
      check(cudaMemsetAsync(ctx_.err, 0, sizeof(DeviceError), stream_), "synchronize");
      check(cudaStreamSynchronize(stream_), "synchronize");
      throw Error(describe(e));
    }
  }

  void embedding(void* out, const int32_t* tokens, int n, const void* table, DType tableType,
                 int vocab, int dim, float scale) override {
    bind();
    cuda::embedding(ctx_, out, tokens, n, table, tableType, vocab, dim, scale);
  }
  void rmsnorm(void* out, const void* in, const void* w, DType wType, int rows, int dim,
               float eps) override {
    bind();
    cuda::rmsnorm(ctx_, out, in, w, wType, rows, dim, eps);
  }
  void addRmsnorm(void* out, void* residual, const void* delta, const void* w, DType wType,
                  int rows, int dim, float eps) override {
    bind();
    cuda::addRmsnorm(ctx_, out, residual, delta, w, wType, rows, dim, eps);
  }
  void add(void* inout, const void* in, size_t n) override {
    bind();
    cuda::add(ctx_, inout, in, n);
  }
  void matmul(void* out, const void* in, const void* w, DType wType, const void* bias, int M,
              int N, int K) override {
    bind();
    if (M <= 0 || N <= 0) return;
    if (wType == DType::BF16) {
      if (useGemv_ && cuda::gemvApplies(in, w, M, K))
        cuda::gemv(ctx_, out, false, in, w, bias, M, N, K);
      else
        gemm_->run(stream_, out, CUDA_R_16BF, in, CUDA_R_16BF, w, CUDA_R_16BF, bias, M, N, K, "matmul");
      return;
    }
    float* x32 = scratch((size_t(M) * K + size_t(M) * N) * sizeof(float));
    float* y32 = x32 + size_t(M) * K;
    bf16ToF32(ctx_, x32, in, size_t(M) * K);
    gemm_->run(stream_, y32, CUDA_R_32F, x32, CUDA_R_32F, w, CUDA_R_32F, bias, M, N, K, "matmul");
    f32ToBf16(ctx_, out, y32, size_t(M) * N);
  }
  void matmulShared(const void* in, DType wType, int M, int K, const MatmulOut* outs,
                    int count) override {
    bind();
    bool fused = useGemv_ && wType == DType::BF16;
    for (int j = 0; fused && j < count; ++j) fused = cuda::gemvApplies(in, outs[j].w, M, K);
    if (fused)
      cuda::gemvShared(ctx_, in, M, K, outs, count);
    else
      Backend::matmulShared(in, wType, M, K, outs, count);
  }
  void gatedMatmul(void* out, void* scratch, const void* in, const void* wGate, const void* wUp,
                   DType wType, int M, int I, int K, Activation act) override {
    bind();
    if (useGemv_ && wType == DType::BF16 && cuda::gemvApplies(in, wGate, M, K) &&
        cuda::gemvApplies(in, wUp, M, K)) {
      if (I > 0) cuda::gatedGemv(ctx_, out, in, wGate, wUp, M, I, K, act);
    } else {
      Backend::gatedMatmul(out, scratch, in, wGate, wUp, wType, M, I, K, act);
    }
  }
  void gatherRows(void* out, const void* in, const int32_t* index, int rows, int dim) override {
    bind();
    cuda::gatherRows(ctx_, out, in, index, rows, dim);
  }
  void rope(void* x, const int32_t* positions, int T, int heads, int headDim,
            const RopeParams& p) override {
    bind();
    cuda::rope(ctx_, x, positions, T, heads, headDim, invFreq(p, headDim));
  }
  void gatedActivation(void* out, const void* gate, const void* up, int T, int I,
                       Activation act) override {
    bind();
    cuda::gatedActivation(ctx_, out, gate, up, size_t(T) * size_t(I), act);
  }
  void appendKv(const PagedKv& kv, const BatchLayout& batch, const void* k,
                const void* v) override {
    checkPagedKvLayout(kv, "appendKv");
    bind();
    cuda::appendKv(ctx_, kv, batch, k, v);
  }
  void ropeAppendKv(const PagedKv& kv, const BatchLayout& batch, void* k, const void* v,
                    const RopeParams& p) override {
    checkPagedKvLayout(kv, "appendKv");
    bind();
    cuda::ropeAppendKv(ctx_, kv, batch, k, v, invFreq(p, kv.kDim));
  }
  void ropeQAppendKv(void* q, int numHeads, const PagedKv& kv, const BatchLayout& batch, void* k,
                     const void* v, const RopeParams& p) override {
    checkPagedKvLayout(kv, "appendKv");
    bind();
    cuda::ropeAppendKv(ctx_, kv, batch, k, v, invFreq(p, kv.kDim), q, numHeads);
  }
  void ropeAppendAttention(void* out, void* q, int numHeads, const PagedKv& kv,
                           const BatchLayout& batch, void* k, const void* v, const RopeParams& p,
                           int window, float scale, float softcap) override {
    checkPagedKvLayout(kv, "appendKv");
    bind();
    if (!cuda::attentionDecodeAppend(ctx_, out, q, kv, batch, numHeads, window, scale, softcap, k,
                                     v, invFreq(p, kv.kDim),
                                     [this](size_t bytes) { return scratch(bytes); }))
      Backend::ropeAppendAttention(out, q, numHeads, kv, batch, k, v, p, window, scale, softcap);
  }
  void attention(void* out, const void* q, const PagedKv& kv, const BatchLayout& batch,
                 int numHeads, int window, float scale, float softcap) override {
    bind();
    cuda::attention(ctx_, out, q, kv, batch, numHeads, window, scale, softcap,
                    [this](size_t bytes) { return scratch(bytes); });
  }
  void attentionLowRankKeys(void* out, const void* q, const PagedKv& kv,
                            const BatchLayout& batch, int numHeads, int window, float scale,
                            float softcap, const KeyBasis& keys) override {
    bind();
    LowRankKeysDev k{keys.basis, keys.headDim, nullptr, nullptr};
    if (keys.headDim > 0 && keys.headDim % 2 == 0) {  // else attentionLowRankKeys says why
      k.invFreq = invFreq(keys.rope, keys.headDim);
      k.rot = ropeRotations(keys.rope, keys.headDim);
    }
    cuda::attentionLowRankKeys(ctx_, out, q, kv, batch, numHeads, window, scale, softcap, k,
                               forcedAttentionPath(), [this](size_t bytes) { return scratch(bytes); });
  }
  void argmax(int32_t* out, const float* logits, int rows, int vocab) override {
    bind();
    if (rows > 0 && vocab > 0) cuda::argmax(ctx_, out, logits, rows, vocab);
  }
  void sample(const SampleOut& out, float* logits, const SampleRow* rows, const int32_t* penalties,
              int numRows, int vocab) override {
    bind();
    if (numRows <= 0 || vocab <= 0) return;
    float* weights = scratch(size_t(numRows) * vocab * sizeof(float));
    cuda::sample(ctx_, out, logits, weights, rows, penalties, numRows, vocab);
  }
  void logits(float* out, const void* hidden, const void* w, DType wType, int M, int V, int K,
              float softcap) override {
    bind();
    if (M <= 0 || V <= 0) return;
    if (wType == DType::BF16) {
      if (useGemv_ && cuda::gemvApplies(hidden, w, M, K))
        cuda::gemv(ctx_, out, true, hidden, w, nullptr, M, V, K);
      else
        gemm_->run(stream_, out, CUDA_R_32F, hidden, CUDA_R_16BF, w, CUDA_R_16BF, nullptr, M, V, K,
                   "logits");
    } else {
      float* x32 = scratch(size_t(M) * K * sizeof(float));
      bf16ToF32(ctx_, x32, hidden, size_t(M) * K);
      gemm_->run(stream_, out, CUDA_R_32F, x32, CUDA_R_32F, w, CUDA_R_32F, nullptr, M, V, K,
                 "logits");
    }
    if (softcap > 0) softcapInPlace(ctx_, out, size_t(M) * V, softcap);
  }

  // CUDA graphs of the stream's work (thread-local capture mode: an unsafe call made by the
  // capturing thread fails the capture; other threads are not affected).
  bool canCapture() const override { return true; }
  void beginCapture() override {
    bind();
    if (capturing_) throw Error("beginCapture: a capture is already in progress");
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "beginCapture");
    capturing_ = true;
  }
  void* endCapture() override {
    bind();
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (e != cudaSuccess || !graph) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw Error(std::string("endCapture: the capture failed (") + cudaGetErrorString(e) + ")");
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (ie != cudaSuccess) {
      cudaGetLastError();
      throw Error(std::string("endCapture: cudaGraphInstantiate failed (") +
                  cudaGetErrorString(ie) + ")");
    }
    ++liveGraphs_;
    return exec;
  }
  void cancelCapture() override {
    if (!capturing_) return;
    bind();
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
  }
  void replay(void* graph) override {
    bind();
    check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), stream_), "replay");
  }
  void releaseGraph(void* graph) override {
    if (!graph) return;
    bind();
    cudaStreamSynchronize(stream_);  // no launch of it still in flight
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
    if (liveGraphs_ > 0 && --liveGraphs_ == 0) freeRetired();
  }

 private:
  // Ops may run on any thread (the runner steps on the libuv pool): make ours current.
  void bind() { cudaSetDevice(device_); }

  // Device scratch valid until the next op that asks for scratch (one stream orders them).
  float* scratch(size_t bytes) {
    if (bytes > scratchBytes_) {
      if (capturing_) throw Error("scratch: would grow during a graph capture");
      // Graphs hold the old address: keep it until the last graph is released.
      if (scratch_ && liveGraphs_ > 0) retired_.push_back(scratch_);
      else if (scratch_) cudaFree(scratch_);  // waits for the work that may still read it
      scratch_ = nullptr;
      scratchBytes_ = 0;
      const size_t want = bytes + bytes / 4;
      if (cudaMalloc(&scratch_, want) != cudaSuccess) {
        cudaGetLastError();
        scratch_ = nullptr;
        throw Error("out of GPU memory allocating scratch (" + std::to_string(want) + " bytes)");
      }
      scratchBytes_ = want;
    }
    return static_cast<float*>(scratch_);
  }

  // A constant table the kernels read (RoPE angles), copied on our stream and waited for.
  // cudaMemcpy is no substitute: it runs on the legacy default stream, which our non-blocking
  // stream does not wait for, and from pageable memory it returns before the copy has landed.
  // The first step of a fresh model then raced the copy and, now and then (more often with
  // other processes on the GPU), rotated with garbage: every logit of that step wrong
  // (test/gpu/first-step-stress.mjs found it).
  // A table first needed inside a graph capture cannot be filled there (no waiting on a
  // capturing stream): the capture fails and the runner's eager fallback fills it.
  void refuseInCapture(const char* what) const {
    if (capturing_) throw Error(std::string(what) + ": a constant table first needed inside a graph capture");
  }
  void uploadTable(void* d, const void* src, size_t bytes, const char* what) {
    check(cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, stream_), what);
    check(cudaStreamSynchronize(stream_), what);
  }

  static std::string ropeKey(const RopeParams& p, int headDim) {
    char key[160];  // exact (hex-float) parameters: distinct values never share an entry
    std::snprintf(key, sizeof key, "%d/%a/%d/%a/%a/%a/%d", headDim, double(p.theta),
                  int(p.scaling), double(p.factor), double(p.lowFreqFactor),
                  double(p.highFreqFactor), p.originalMaxPosition);
    return key;
  }

  const double* invFreq(const RopeParams& p, int headDim) {
    const std::string key = ropeKey(p, headDim);
    auto it = ropeCache_.find(key);
    if (it != ropeCache_.end()) return it->second;
    refuseInCapture("rope");
    const std::vector<double> inv = ropeInverseFrequencies(p, headDim);
    void* d = alloc(inv.size() * sizeof(double), "RoPE frequencies");
    uploadTable(d, inv.data(), inv.size() * sizeof(double), "rope");
    return ropeCache_[key] = static_cast<const double*>(d);
  }

  // cos/sin of j·θ_i for j < kLowRankRotRows (the low-rank kernels' in-tile rotations), in
  // double, cached like invFreq.
  const float* ropeRotations(const RopeParams& p, int headDim) {
    const std::string key = ropeKey(p, headDim);
    auto it = rotCache_.find(key);
    if (it != rotCache_.end()) return it->second;
    refuseInCapture("rope");
    const std::vector<double> inv = ropeInverseFrequencies(p, headDim);
    std::vector<float> rot(size_t(kLowRankRotRows) * inv.size() * 2);
    for (int j = 0; j < kLowRankRotRows; ++j)
      for (size_t i = 0; i < inv.size(); ++i) {
        rot[(j * inv.size() + i) * 2] = float(std::cos(j * inv[i]));
        rot[(j * inv.size() + i) * 2 + 1] = float(std::sin(j * inv[i]));
      }
    void* d = alloc(rot.size() * sizeof(float), "RoPE rotations");
    uploadTable(d, rot.data(), rot.size() * sizeof(float), "rope");
    return rotCache_[key] = static_cast<const float*>(d);
  }

  void freeRetired() {
    for (void* p : retired_) cudaFree(p);
    retired_.clear();
  }

  void freeAll() {
    freeRetired();
    gemm_.reset();
    for (auto& [k, p] : ropeCache_) cudaFree(const_cast<double*>(p));
    ropeCache_.clear();
    for (auto& [k, p] : rotCache_) cudaFree(const_cast<float*>(p));
    rotCache_.clear();
    if (scratch_) cudaFree(scratch_);
    if (ctx_.err) cudaFree(ctx_.err);
    if (ctx_.splitCounters) cudaFree(ctx_.splitCounters);
    if (errHost_) cudaFreeHost(errHost_);
    if (upStage_) cudaFreeHost(upStage_);
    if (downStage_) cudaFreeHost(downStage_);
    if (stream_) cudaStreamDestroy(stream_);
    scratch_ = nullptr;
    ctx_.err = nullptr;
    ctx_.splitCounters = nullptr;
    ctx_.numSplitCounters = 0;
    errHost_ = nullptr;
    upStage_ = downStage_ = nullptr;
    stream_ = nullptr;
  }

  int device_;
  Ctx ctx_;
  cudaStream_t stream_ = nullptr;
  DeviceError* errHost_ = nullptr;  // pinned
  // Pinned staging (upload, download): 2 MiB holds a decode step's metadata up to batch 64 at
  // 4k tokens of the 1B bench model (26 KB a row); larger copies go from the caller's memory.
  static constexpr size_t kUploadStageBytes = size_t(2) << 20;
  static constexpr size_t kDownloadStageBytes = size_t(256) << 10;
  void* upStage_ = nullptr;
  size_t upStageUsed_ = 0;
  void* downStage_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  void* scratch_ = nullptr;
  size_t scratchBytes_ = 0;
  std::map<std::string, const double*> ropeCache_;
  std::map<std::string, const float*> rotCache_;
  bool capturing_ = false;
  // Decode-shaped matmuls on the skinny GEMM (gemv.h) unless MIXATTN_CUDA_GEMV=0.
  const bool useGemv_ = [] {
    const char* e = std::getenv("MIXATTN_CUDA_GEMV");
    return !(e && (std::string(e) == "0" || std::string(e) == "off"));
  }();
  int liveGraphs_ = 0;
  std::vector<void*> retired_;  // scratch buffers that live graphs may still use
};

}  // namespace

std::unique_ptr<Backend> createCudaBackend(int device) {
  return std::make_unique<CudaBackend>(device);
}

}  // namespace mixattn
