// The model runner: owns a backend, the weights and the paged KV arena, and runs one forward
// step for a batch of sequences (any mix of prefill chunks and decode tokens) as a sequence of
// backend ops. The layer loop lives here, not in JS, so a step costs one call from JS.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "model/model_desc.h"

namespace mixattn {

// One step's input, in host memory. Sequence s has numNew[s] new tokens (rows
// tokenStart[s]…) after pastLen[s] cached ones; tables[c] holds the batch's block-table rows
// of cache class c (numSeqs rows of tableStrides[c] ints, layout as PagedKv documents).
struct StepInput {
  std::vector<int32_t> tokens;
  std::vector<int32_t> numNew;
  std::vector<int32_t> pastLen;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int32_t> tableStrides;
  std::vector<int32_t> logitRows;  // rows whose logits are returned, in this order
};

// Sampling of one step's logit rows on the backend (forwardSample), in host memory: one row of
// parameters per logitRows entry, whose penaltyStart/penaltyCount index `penalties`.
struct SampleInput {
  std::vector<SampleRow> rows;
  std::vector<int32_t> penalties;  // (token id, output count) pairs
};

// What forwardSample returns (SampleOut's fields, downloaded).
struct SampleResult {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  std::vector<int32_t> topIds;       // [rows * topStride]
  std::vector<float> topLogprobs;    // [rows * topStride]
  int topStride = 0;                 // the largest topLogprobs of the rows
};

class ModelRunner {
 public:
  ModelRunner(std::unique_ptr<Backend> backend, ModelDesc desc);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  const ModelDesc& desc() const { return desc_; }
  Backend& backend() { return *backend_; }

  // Copies one weight to the backend. Throws on an unknown name, a wrong shape or size,
  // or a weight given twice; nothing is kept on error.
  void setWeight(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                 const void* data, size_t bytes);
  // Names of expected weights not yet set (empty when the model is complete).
  std::vector<std::string> missingWeights() const;
  size_t weightBytes() const { return weightBytes_; }

  // (Re)allocates the page arena; see PagedKv for the page layout.
  void allocateKv(int numPages, DType dtype, int blockSize);
  size_t pageBytes() const;
  int numPages() const { return numPages_; }

  // Starts a decode step that replays a captured graph (metadata upload, graph launch: a few
  // asynchronous calls, no waiting) and returns true; returns false, doing nothing, for any
  // other step. The bindings call it on the JS thread, so the worker's hop to the thread pool
  // overlaps the device's work instead of delaying it; the forward* call that follows with
  // launched = true only finishes the step. Throws on bad input as the forward calls do.
  bool launch(const StepInput& in);

  // Runs one step (unless launch() started it); writes logits [logitRows.size(), vocab] (fp32)
  // to `logits`.
  void forward(const StepInput& in, float* logits, bool launched = false);
  // Runs one step (unless launch() started it); writes the argmax token id of each of
  // logitRows (int32, [logitRows.size()]) to `ids`, computed on the backend (the logits stay in
  // backend memory).
  void forwardArgmax(const StepInput& in, int32_t* ids, bool launched = false);
  // As forward(), and copies every layer's attention input (the normalised hidden state that
  // feeds its q/k/v projections) to `attnInputs`, [numLayers][tokens][hiddenSize] fp32
  // (Eigen Attention calibration). Runs the step's ops as given (no decode-graph bucket).
  void forwardCapture(const StepInput& in, float* logits, float* attnInputs);
  // Runs one step and samples each of logitRows on the backend (Backend::sample; the logits
  // stay in backend memory: only ids and the requested logprobs are downloaded). Bad sampling
  // input throws before the step runs (callers of launch() call checkSampling first).
  void forwardSample(const StepInput& in, const SampleInput& s, SampleResult& out,
                     bool launched = false);
  // Throws on sampling input that does not fit the step (forwardSample's checks).
  void checkSampling(const StepInput& in, const SampleInput& s) const;

 private:
  struct Weight {
    void* data = nullptr;
    DType dtype = DType::F32;
  };
  struct LayerWeights;
  // A decode step padded to a batch-size bucket, captured as a backend graph (see step()).
  struct DecodeGraph {
    void* exec = nullptr;   // the instantiated graph (null until captured)
    void* meta = nullptr;   // the step metadata at the fixed address the graph reads
    size_t metaBytes = 0;
    std::vector<int32_t> strides;  // per cache class: the padded table stride
    bool failed = false;    // capture failed: this bucket runs its padded ops eagerly
  };
  enum class GraphUse { None, Record, Replay };

  const Weight* find(const std::string& name) const;
  void bindLayerWeights();
  void ensureWorkspace(int tokens, int logitRows);
  void validateStep(const StepInput& in) const;
  // The layer loop and LM head: leaves logitRows' fp32 logits in logitsDev_.
  // With g: the step is a padded decode step whose metadata goes to g->meta; Record captures
  // its ops into g->exec (after they ran eagerly once), Replay launches g->exec instead.
  void run(const StepInput& in, DecodeGraph* g = nullptr, GraphUse use = GraphUse::None);
  // Runs a step: decode-only steps through a bucket (graphs, MIXATTN_CUDA_GRAPHS), else run().
  void step(const StepInput& in);
  // One new token and at most one logit row per sequence, at most 256 sequences.
  bool isDecodeStep(const StepInput& in) const;
  // A decode step's bucket strides (per cache class), and the step padded to bucket B.
  std::vector<int32_t> paddedStrides(const StepInput& in) const;
  StepInput padded(const StepInput& in, int B, const std::vector<int32_t>& strides) const;
  void dropGraphs();
  // forwardCapture: copies layer `layer`'s attention input (h_, T rows) to capture_.
  void captureAttentionInput(int layer, int T);

  std::unique_ptr<Backend> backend_;
  ModelDesc desc_;
  std::map<std::string, std::vector<int64_t>> expected_;
  std::map<std::string, Weight> weights_;
  std::vector<LayerWeights> layerWeights_;
  size_t weightBytes_ = 0;

  void* arena_ = nullptr;
  int numPages_ = 0;
  DType kvType_ = DType::F32;
  int blockSize_ = 16;

  // Workspace, grown on demand; all in the backend's activation dtype.
  int capTokens_ = 0, capLogitRows_ = 0;
  void *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr;
  void *attn_ = nullptr, *o_ = nullptr, *gate_ = nullptr, *up_ = nullptr, *rows_ = nullptr;
  void* meta_ = nullptr;
  size_t metaBytes_ = 0;
  float* logitsDev_ = nullptr;
  int32_t* idsDev_ = nullptr;  // [capLogitRows_] argmax ids
  // forwardSample's uploads (rows, then penalty pairs) and outputs, grown on demand.
  void* sampleIn_ = nullptr;
  size_t sampleInBytes_ = 0;
  void* sampleOut_ = nullptr;
  size_t sampleOutBytes_ = 0;
  // Decode graphs by bucket size. They point into the workspace, the arena and the backend's
  // scratch: dropped whenever the workspace or the arena is reallocated.
  std::map<int, DecodeGraph> graphs_;
  float* capture_ = nullptr;  // forwardCapture's destination while its step runs
};

}  // namespace mixattn
