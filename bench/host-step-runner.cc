// The host side of ModelRunner's decode step, without a GPU: a backend whose ops do nothing
// (memory is malloc, uploads and downloads are memcpy) and that "captures" graphs, so
// launch + forwardArgmax walk the CUDA decode path (bucket, padding, metadata, upload, replay)
// and the time per call is the runner's own bookkeeping. The model has the shape of
// `mixattn bench --size 1b` where the host sees it: 24 layers of plan standard (one cache class
// of 24 pages per block), blocks of 16, a 4096-token context growing by one token a step.
// bench/host-step.mjs times the JS and N-API parts of the same step.
//
//   cmake-js build first (build/libmixattn_core.a), then:
//   g++ -O2 -std=c++17 -Inative bench/host-step-runner.cc build/libmixattn_core.a -lpthread \
//       -o build/host-step-runner && build/host-step-runner [steps]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>
#include <algorithm>

#include "backend.h"
#include "model/runner.h"

namespace {

using namespace mixattn;

class NullBackend final : public Backend {
 public:
  const char* name() const override { return "null"; }
  DType activationDType() const override { return DType::F32; }
  void* alloc(size_t bytes, const char*) override { return std::calloc(1, bytes ? bytes : 1); }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void synchronize() override {}
  void embedding(void*, const int32_t*, int, const void*, DType, int, int, float) override {}
  void rmsnorm(void*, const void*, const void*, DType, int, int, float) override {}
  void addRmsnorm(void*, void*, const void*, const void*, DType, int, int, float) override {}
  void add(void*, const void*, size_t) override {}
  void matmul(void*, const void*, const void*, DType, const void*, int, int, int) override {}
  void gatherRows(void*, const void*, const int32_t*, int, int) override {}
  void rope(void*, const int32_t*, int, int, int, const RopeParams&) override {}
  void gatedActivation(void*, const void*, const void*, int, int, Activation) override {}
  void appendKv(const PagedKv&, const BatchLayout&, const void*, const void*) override {}
  void attention(void*, const void*, const PagedKv&, const BatchLayout&, int, int, float,
                 float) override {}
  void logits(float*, const void*, const void*, DType, int, int, int, float) override {}
  void argmax(int32_t*, const float*, int, int) override {}
  void sample(const SampleOut&, float*, const SampleRow*, const int32_t*, int, int) override {}
  bool canCapture() const override { return true; }
  void beginCapture() override {}
  void* endCapture() override { return this; }  // any non-null handle
};

constexpr int kLayers = 24, kBlockSize = 16, kContext = 4096;

ModelDesc benchShape() {
  ModelDesc d;
  d.vocabSize = 16;
  d.hiddenSize = d.intermediateSize = 8;
  d.numLayers = kLayers;
  d.numHeads = d.numKvHeads = 1;
  d.headDim = 8;
  d.pageWidth = 16;
  for (int i = 0; i < kLayers; ++i) {
    LayerDesc l;
    l.kvSource = i;
    l.slot = i;
    l.kDim = l.vDim = 8;
    d.layers.push_back(l);
  }
  d.classes.push_back(KvClassDesc{kLayers});
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 20000;
  ModelRunner runner(std::make_unique<NullBackend>(), benchShape());
  for (const WeightShape& w : expectedWeights(runner.desc())) {
    size_t n = 1;
    for (int64_t s : w.shape) n *= size_t(s);
    const std::vector<float> zeros(n, 0.f);
    runner.setWeight(w.name, DType::F32, w.shape, zeros.data(), n * sizeof(float));
  }
  const int maxBlocks = (kContext + steps) / kBlockSize + 1;
  runner.allocateKv(maxBlocks * kLayers + 1, DType::F32, kBlockSize);

  std::vector<int32_t> pages(size_t(maxBlocks) * kLayers);
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = int32_t(i);
  std::vector<double> us;
  us.reserve(steps);
  int32_t id = 0;
  for (int i = 0; i < steps; ++i) {
    // As Engine.prepare packs it: the row's used blocks, stride = used entries.
    const int len = kContext + i;
    const int blocks = (len + 1 + kBlockSize - 1) / kBlockSize;
    StepInput in;
    in.tokens = {id};
    in.numNew = {1};
    in.pastLen = {len};
    in.logitRows = {0};
    in.tables.emplace_back(pages.begin(), pages.begin() + size_t(blocks) * kLayers);
    in.tableStrides = {blocks * kLayers};
    const auto t0 = std::chrono::steady_clock::now();
    runner.forwardArgmax(in, &id, runner.launch(in));  // as the bindings call it
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin() + steps / 10, us.end());  // the first tenth is warm-up
  const std::vector<double> kept(us.begin() + steps / 10, us.end());
  const double p50 = kept[kept.size() / 2], p10 = kept[kept.size() / 10];
  std::printf("runner.launch + forwardArgmax host path (graph replay, %d layers, context %d+): p50 %.2f us, p10 %.2f us over %zu steps\n",
              kLayers, kContext, p50, p10, kept.size());
  return 0;
}
