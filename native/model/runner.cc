#include "model/runner.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/sample_check.h"

namespace mixattn {

struct ModelRunner::LayerWeights {
  const Weight *attnNorm, *qProj, *qBias, *kProj, *kBias, *vProj, *vBias, *qNorm, *kNorm;
  const Weight* kUp;  // the key basis of an owner with low-rank keys (always f32)
  const Weight *oProj, *postAttnNorm, *mlpNorm, *gateProj, *upProj, *downProj, *postMlpNorm;
};

namespace {
std::string shapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}
bool isKeyBasis(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, ".k_up") == 0;
}
}  // namespace

ModelRunner::ModelRunner(std::unique_ptr<Backend> backend, ModelDesc desc)
    : backend_(std::move(backend)), desc_(std::move(desc)) {
  validateModelDesc(desc_);
  for (auto& w : expectedWeights(desc_)) expected_[w.name] = w.shape;
}

ModelRunner::~ModelRunner() {
  dropGraphs();
  for (auto& [name, w] : weights_) backend_->release(w.data);
  for (void* p : {arena_, x_, h_, q_, k_, v_, attn_, o_, gate_, up_, rows_, meta_,
                  static_cast<void*>(logitsDev_), static_cast<void*>(idsDev_), sampleIn_,
                  sampleOut_})
    if (p) backend_->release(p);
}

void ModelRunner::setWeight(const std::string& name, DType dtype,
                            const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  auto it = expected_.find(name);
  if (it == expected_.end()) throw Error("weight '" + name + "' is not part of this model");
  if (shape != it->second)
    throw Error("weight '" + name + "' has shape " + shapeString(shape) + ", expected " +
                shapeString(it->second));
  const size_t want = size_t(numel(shape)) * dtypeSize(dtype);
  if (bytes != want)
    throw Error("weight '" + name + "' has " + std::to_string(bytes) + " bytes, expected " +
                std::to_string(want) + " for " + dtypeName(dtype) + " " + shapeString(shape));
  if (weights_.count(name)) throw Error("weight '" + name + "' was given twice");
  // Key bases are read by attentionLowRankKeys as fp32 (KeyBasis): widened here once.
  std::vector<float> widened;
  if (isKeyBasis(name) && dtype == DType::BF16) {
    const uint16_t* bits = static_cast<const uint16_t*>(data);
    widened.resize(size_t(numel(shape)));
    for (size_t i = 0; i < widened.size(); ++i) {
      const uint32_t u = uint32_t(bits[i]) << 16;
      std::memcpy(&widened[i], &u, sizeof u);
    }
    data = widened.data();
    bytes = widened.size() * sizeof(float);
    dtype = DType::F32;
  }
  void* dev = backend_->alloc(bytes, name.c_str());
  try {
    backend_->upload(dev, data, bytes);
  } catch (...) {
    backend_->release(dev);
    throw;
  }
  weights_[name] = Weight{dev, dtype};
  weightBytes_ += bytes;
  layerWeights_.clear();  // rebound lazily once complete
}

std::vector<std::string> ModelRunner::missingWeights() const {
  std::vector<std::string> missing;
  for (auto& w : expectedWeights(desc_))
    if (!weights_.count(w.name)) missing.push_back(w.name);
  return missing;
}

const ModelRunner::Weight* ModelRunner::find(const std::string& name) const {
  auto it = weights_.find(name);
  return it == weights_.end() ? nullptr : &it->second;
}

void ModelRunner::bindLayerWeights() {
  auto missing = missingWeights();
  if (!missing.empty())
    throw Error("model is incomplete: weight '" + missing.front() + "' and " +
                std::to_string(missing.size() - 1) + " more were never set");
  layerWeights_.resize(desc_.numLayers);
  for (int i = 0; i < desc_.numLayers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    auto f = [&](const char* n) { return find(p + n); };
    layerWeights_[i] = LayerWeights{f("attn_norm"), f("q_proj"),   f("q_bias"),
                                    f("k_proj"),    f("k_bias"),   f("v_proj"),
                                    f("v_bias"),    f("q_norm"),   f("k_norm"),
                                    f("k_up"),      f("o_proj"),    f("post_attn_norm"), f("mlp_norm"),
                                    f("gate_proj"), f("up_proj"),  f("down_proj"),
                                    f("post_mlp_norm")};
  }
}

size_t ModelRunner::pageBytes() const {
  // One page size for every class; low-rank owners share pages (LayerDesc::pageOffset).
  return size_t(blockSize_) * desc_.numKvHeads * desc_.pageWidth * dtypeSize(kvType_);
}

void ModelRunner::allocateKv(int numPages, DType dtype, int blockSize) {
  if (numPages <= 0) throw Error("allocateKv: numPages must be > 0");
  if (blockSize <= 0) throw Error("allocateKv: blockSize must be > 0");
  const size_t page = size_t(blockSize) * desc_.numKvHeads * desc_.pageWidth * dtypeSize(dtype);
  // One page more than asked: the page that padded rows of bucketed decode steps write and
  // read (see step()); the caller's page ids stay in [0, numPages).
  void* arena = backend_->alloc(page * size_t(numPages + 1), "KV cache");
  try {
    const std::vector<char> zeros(page, 0);
    backend_->upload(static_cast<char*>(arena) + page * size_t(numPages), zeros.data(), page);
  } catch (...) {
    backend_->release(arena);
    throw;
  }
  dropGraphs();
  if (arena_) backend_->release(arena_);
  arena_ = arena;
  numPages_ = numPages;
  kvType_ = dtype;
  blockSize_ = blockSize;
}

void ModelRunner::ensureWorkspace(int tokens, int logitRows) {
  const size_t a = dtypeSize(backend_->activationDType());
  if (tokens > capTokens_ || logitRows > capLogitRows_) dropGraphs();
  if (tokens > capTokens_) {
    const int cap = std::max(tokens, capTokens_ * 2);
    const size_t H = desc_.hiddenSize, I = desc_.intermediateSize;
    const size_t qDim = size_t(desc_.numHeads) * desc_.headDim;
    const size_t kvDim = size_t(desc_.numKvHeads) * desc_.headDim;
    auto grow = [&](void*& p, size_t elems, const char* what) {
      void* n = backend_->alloc(elems * cap * a, what);
      if (p) backend_->release(p);
      p = n;
    };
    grow(x_, H, "activations");
    grow(h_, H, "activations");
    grow(o_, H, "activations");
    grow(q_, qDim, "activations");
    grow(attn_, qDim, "activations");
    grow(k_, kvDim, "activations");
    grow(v_, kvDim, "activations");
    grow(gate_, I, "activations");
    grow(up_, I, "activations");
    capTokens_ = cap;
  }
  if (logitRows > capLogitRows_) {
    const int cap = std::max(logitRows, capLogitRows_ * 2);
    void* rows = backend_->alloc(size_t(cap) * desc_.hiddenSize * a, "logit rows");
    void *lg = nullptr, *ids = nullptr;
    try {
      lg = backend_->alloc(size_t(cap) * desc_.vocabSize * sizeof(float), "logits");
      ids = backend_->alloc(size_t(cap) * sizeof(int32_t), "token ids");
    } catch (...) {
      backend_->release(rows);
      if (lg) backend_->release(lg);
      throw;
    }
    if (rows_) backend_->release(rows_);
    if (logitsDev_) backend_->release(logitsDev_);
    if (idsDev_) backend_->release(idsDev_);
    rows_ = rows;
    logitsDev_ = static_cast<float*>(lg);
    idsDev_ = static_cast<int32_t*>(ids);
    capLogitRows_ = cap;
  }
}

void ModelRunner::validateStep(const StepInput& in) const {
  const size_t S = in.numNew.size();
  if (S == 0) throw Error("forward: the batch has no sequences");
  if (in.pastLen.size() != S) throw Error("forward: pastLen must have one entry per sequence");
  if (!arena_) throw Error("forward: the KV cache was never allocated (allocateKv)");
  if (in.tables.size() != desc_.classes.size() || in.tableStrides.size() != desc_.classes.size())
    throw Error("forward: expected " + std::to_string(desc_.classes.size()) +
                " block tables, one per cache class");
  int64_t total = 0;
  for (size_t s = 0; s < S; ++s) {
    if (in.numNew[s] < 1) throw Error("forward: numNew[" + std::to_string(s) + "] must be >= 1");
    if (in.pastLen[s] < 0) throw Error("forward: pastLen[" + std::to_string(s) + "] must be >= 0");
    total += in.numNew[s];
  }
  if (total != int64_t(in.tokens.size()))
    throw Error("forward: tokens has " + std::to_string(in.tokens.size()) +
                " entries but numNew sums to " + std::to_string(total));
  for (size_t c = 0; c < in.tables.size(); ++c) {
    const int64_t stride = in.tableStrides[c];
    if (stride < 0 || int64_t(in.tables[c].size()) != stride * int64_t(S))
      throw Error("forward: tables[" + std::to_string(c) + "] must hold numSeqs x tableStride ints");
    for (size_t s = 0; s < S; ++s) {
      const int64_t blocks = (int64_t(in.pastLen[s]) + in.numNew[s] + blockSize_ - 1) / blockSize_;
      if (blocks * desc_.classes[c].pagesPerBlock > stride)
        throw Error("forward: tables[" + std::to_string(c) + "] row " + std::to_string(s) +
                    " is too short for " + std::to_string(in.pastLen[s] + in.numNew[s]) +
                    " tokens");
    }
  }
  if (in.logitRows.empty()) throw Error("forward: logitRows must not be empty");
  for (size_t r = 0; r < in.logitRows.size(); ++r)
    if (in.logitRows[r] < 0 || in.logitRows[r] >= total)
      throw Error("forward: logitRows[" + std::to_string(r) + "] = " +
                  std::to_string(in.logitRows[r]) + " is not a row of this step");
}

void ModelRunner::dropGraphs() {
  for (auto& [bucket, g] : graphs_) {
    if (g.exec) backend_->releaseGraph(g.exec);
    if (g.meta) backend_->release(g.meta);
  }
  graphs_.clear();
}

namespace {
// MIXATTN_CUDA_GRAPHS: unset, "1" or "on": decode steps replay graphs where the backend can
// capture; "0" or "off": every step runs its ops as given (no padding); "eager": decode steps
// are padded to their bucket like graphed ones but run eagerly (tests: same numbers as graphs).
enum class GraphMode { Off, On, Eager };
GraphMode graphMode() {
  const char* e = std::getenv("MIXATTN_CUDA_GRAPHS");
  if (!e || !*e || !std::strcmp(e, "1") || !std::strcmp(e, "on")) return GraphMode::On;
  if (!std::strcmp(e, "eager")) return GraphMode::Eager;
  return GraphMode::Off;
}
int decodeBucket(int seqs) {
  for (int b = 1; b <= 256; b *= 2)
    if (seqs <= b) return b;
  return 0;
}
}  // namespace

bool ModelRunner::isDecodeStep(const StepInput& in) const {
  const int S = int(in.numNew.size());
  if (decodeBucket(S) == 0 || int(in.tokens.size()) != S || int(in.logitRows.size()) > S) return false;
  for (int s = 0; s < S; ++s)
    if (in.numNew[s] != 1) return false;
  return true;
}

std::vector<int32_t> ModelRunner::paddedStrides(const StepInput& in) const {
  // The caller's stride, rounded up to 16 blocks (256 tokens of 16). The decode kernel splits
  // the keys a row could have (the stride) into chunks, so a much larger stride than needed
  // leaves chunks empty: re-captured whenever the rounded stride changes.
  const size_t C = desc_.classes.size();
  std::vector<int32_t> strides(C);
  for (size_t c = 0; c < C; ++c) {
    const int64_t ppb = desc_.classes[c].pagesPerBlock;
    const int64_t blocks = std::max<int64_t>((in.tableStrides[c] + ppb - 1) / ppb, 1);
    strides[c] = int32_t(ppb * ((blocks + 15) / 16 * 16));
  }
  return strides;
}

StepInput ModelRunner::padded(const StepInput& in, int B, const std::vector<int32_t>& strides) const {
  const int S = int(in.numNew.size());
  const size_t C = desc_.classes.size();
  StepInput p;
  p.tokens = in.tokens;
  p.tokens.resize(B, 0);
  p.numNew.assign(B, 1);
  p.pastLen = in.pastLen;
  p.pastLen.resize(B, 0);
  p.tableStrides = strides;
  p.tables.resize(C);
  for (size_t c = 0; c < C; ++c) {
    const size_t from = size_t(in.tableStrides[c]), to = size_t(strides[c]);
    const size_t ppb = size_t(desc_.classes[c].pagesPerBlock);
    auto& t = p.tables[c];
    t.resize(size_t(B) * to);
    for (int s = 0; s < B; ++s) {
      auto row = t.begin() + s * to;
      const size_t n = s < S ? from : ppb;  // padded rows: the spare page, then -1
      if (s < S) std::copy_n(in.tables[c].begin() + s * from, from, row);
      else std::fill_n(row, ppb, int32_t(numPages_));
      std::fill(row + n, row + to, -1);
    }
  }
  p.logitRows = in.logitRows;
  p.logitRows.resize(B, 0);
  return p;
}

// Decode-only steps (one new token per sequence, at most one logit row per sequence) are
// padded to a bucket of 1, 2, 4, ..., 256 rows: the padded rows are dummy sequences (token 0
// at position 0) whose one block is the arena's spare page, and their logits are never read;
// table rows are padded (-1) to a per-bucket stride (re-captured when it changes). Every launch
// configuration then depends on the bucket and the strides only, so the ops are captured once
// per bucket and replayed with the step's metadata uploaded to the bucket's fixed buffer.
void ModelRunner::step(const StepInput& in) {
  const GraphMode mode = graphMode();
  const bool capture = mode == GraphMode::On && backend_->canCapture();
  if (!capture && mode != GraphMode::Eager) return run(in);
  if (!isDecodeStep(in)) return run(in);
  validateStep(in);  // the caller's errors name the caller's input, not the padded one
  if (layerWeights_.empty()) bindLayerWeights();
  const int B = decodeBucket(int(in.numNew.size()));
  ensureWorkspace(B, B);  // may drop graphs: before taking one

  DecodeGraph* g = &graphs_[B];
  std::vector<int32_t> strides = paddedStrides(in);
  if (g->strides != strides) {
    if (g->exec) backend_->releaseGraph(g->exec);
    if (g->meta) backend_->release(g->meta);
    *g = DecodeGraph{};
    g->strides = std::move(strides);
  }
  const StepInput p = padded(in, B, g->strides);

  if (!capture || g->failed) return run(p, g, GraphUse::None);
  if (g->exec) return run(p, g, GraphUse::Replay);
  run(p, g, GraphUse::None);  // creates what the ops cache (plans, scratch) and does the step
  try {
    run(p, g, GraphUse::Record);  // records the same ops; runs nothing
  } catch (const Error& e) {
    g->failed = true;  // this bucket stays eager; the step above already ran
    std::fprintf(stderr, "mixattn: decode graph capture (bucket %d) failed, eager instead: %s\n", B,
                 e.what());
  }
}

bool ModelRunner::launch(const StepInput& in) {
  if (!backend_->canCapture() || graphMode() != GraphMode::On || !isDecodeStep(in)) return false;
  const int B = decodeBucket(int(in.numNew.size()));
  auto it = graphs_.find(B);
  if (it == graphs_.end() || !it->second.exec || B > capTokens_ || B > capLogitRows_) return false;
  validateStep(in);  // before paddedStrides reads the caller's strides
  if (it->second.strides != paddedStrides(in)) return false;
  run(padded(in, B, it->second.strides), &it->second, GraphUse::Replay);
  return true;
}

void ModelRunner::forward(const StepInput& in, float* logits, bool launched) {
  if (!launched) step(in);
  backend_->download(logits, logitsDev_, in.logitRows.size() * size_t(desc_.vocabSize) * sizeof(float));
}

void ModelRunner::forwardArgmax(const StepInput& in, int32_t* ids, bool launched) {
  if (!launched) step(in);
  const int R = int(in.logitRows.size());
  backend_->argmax(idsDev_, logitsDev_, R, desc_.vocabSize);
  backend_->download(ids, idsDev_, size_t(R) * sizeof(int32_t));
}

void ModelRunner::forwardCapture(const StepInput& in, float* logits, float* attnInputs) {
  capture_ = attnInputs;
  try {
    run(in);
  } catch (...) {
    capture_ = nullptr;
    throw;
  }
  capture_ = nullptr;
  backend_->download(logits, logitsDev_, in.logitRows.size() * size_t(desc_.vocabSize) * sizeof(float));
}

void ModelRunner::captureAttentionInput(int layer, int T) {
  const size_t n = size_t(T) * desc_.hiddenSize;
  float* dst = capture_ + size_t(layer) * n;
  if (backend_->activationDType() == DType::F32) {
    backend_->download(dst, h_, n * sizeof(float));
    return;
  }
  std::vector<uint16_t> bits(n);  // bf16 activations: widened exactly (a shift)
  backend_->download(bits.data(), h_, n * sizeof(uint16_t));
  for (size_t j = 0; j < n; ++j) {
    const uint32_t u = uint32_t(bits[j]) << 16;
    std::memcpy(dst + j, &u, sizeof u);
  }
}

namespace {
// Grows a backend buffer to at least `bytes` (contents are not kept).
void ensureBuffer(Backend& be, void*& buf, size_t& cap, size_t bytes, const char* what) {
  if (bytes <= cap && buf) return;
  const size_t want = std::max(bytes, cap * 2);
  void* p = be.alloc(want, what);
  if (buf) be.release(buf);
  buf = p;
  cap = want;
}
}  // namespace

void ModelRunner::checkSampling(const StepInput& in, const SampleInput& s) const {
  const int R = int(in.logitRows.size());
  if (int(s.rows.size()) != R)
    throw Error("forward: " + std::to_string(s.rows.size()) + " sampling rows for " +
                std::to_string(R) + " logit rows");
  if (s.penalties.size() % 2 != 0) throw Error("forward: penalties must hold (id, count) pairs");
  checkSampleInputs(s.rows.data(), R, s.penalties.data(), s.penalties.size() / 2, desc_.vocabSize,
                    kMaxTopLogprobs);
}

void ModelRunner::forwardSample(const StepInput& in, const SampleInput& s, SampleResult& out,
                                bool launched) {
  checkSampling(in, s);
  const int R = int(in.logitRows.size());
  int K = 0;
  for (const SampleRow& r : s.rows) K = std::max(K, int(r.topLogprobs));
  if (!launched) step(in);
  Backend& be = *backend_;
  // Rows first (8-byte aligned), then the pairs: one upload.
  const size_t rowBytes = size_t(R) * sizeof(SampleRow);
  const size_t inBytes = rowBytes + s.penalties.size() * sizeof(int32_t);
  std::vector<uint8_t> host(inBytes);
  std::memcpy(host.data(), s.rows.data(), rowBytes);
  if (!s.penalties.empty())
    std::memcpy(host.data() + rowBytes, s.penalties.data(), s.penalties.size() * sizeof(int32_t));
  ensureBuffer(be, sampleIn_, sampleInBytes_, inBytes, "sampling parameters");
  be.upload(sampleIn_, host.data(), inBytes);
  // Outputs: ids, logprobs, top ids, top logprobs (4 bytes each): one download.
  const size_t n = size_t(R) * (2 + 2 * size_t(K));
  ensureBuffer(be, sampleOut_, sampleOutBytes_, n * 4, "sampled tokens");
  auto* o = static_cast<int32_t*>(sampleOut_);
  SampleOut so;
  so.ids = o;
  so.logprobs = reinterpret_cast<float*>(o + R);
  so.topIds = o + 2 * R;
  so.topLogprobs = reinterpret_cast<float*>(o + 2 * R + size_t(R) * K);
  so.topStride = K;
  auto* dev = static_cast<uint8_t*>(sampleIn_);
  be.sample(so, logitsDev_, reinterpret_cast<const SampleRow*>(dev),
            reinterpret_cast<const int32_t*>(dev + rowBytes), R, desc_.vocabSize);
  std::vector<int32_t> all(n);
  be.download(all.data(), sampleOut_, n * 4);
  out.topStride = K;
  out.ids.assign(all.begin(), all.begin() + R);
  out.logprobs.resize(R);
  std::memcpy(out.logprobs.data(), all.data() + R, size_t(R) * 4);
  out.topIds.assign(all.begin() + 2 * R, all.begin() + 2 * R + size_t(R) * K);
  out.topLogprobs.resize(size_t(R) * K);
  if (K) std::memcpy(out.topLogprobs.data(), all.data() + 2 * R + size_t(R) * K, size_t(R) * K * 4);
}

void ModelRunner::run(const StepInput& in, DecodeGraph* g, GraphUse use) {
  validateStep(in);
  if (layerWeights_.empty()) bindLayerWeights();
  const ModelDesc& d = desc_;
  Backend& be = *backend_;
  const int S = int(in.numNew.size());
  const int T = int(in.tokens.size());
  const int R = int(in.logitRows.size());
  ensureWorkspace(T, R);

  // Step metadata as one int32 buffer: tokens, tokenStart, numNew, pastLen, positions,
  // seqOfToken, logitRows, then each class's table rows.
  size_t tableInts = 0;
  for (auto& t : in.tables) tableInts += t.size();
  std::vector<int32_t> meta;
  meta.reserve(size_t(3 * T + 3 * S + R) + tableInts);
  meta.insert(meta.end(), in.tokens.begin(), in.tokens.end());
  const size_t oStart = meta.size();
  for (int s = 0, row = 0; s < S; row += in.numNew[s], ++s) meta.push_back(row);
  const size_t oNew = meta.size();
  meta.insert(meta.end(), in.numNew.begin(), in.numNew.end());
  const size_t oPast = meta.size();
  meta.insert(meta.end(), in.pastLen.begin(), in.pastLen.end());
  const size_t oPos = meta.size();
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < in.numNew[s]; ++i) meta.push_back(in.pastLen[s] + i);
  const size_t oSeq = meta.size();
  for (int s = 0; s < S; ++s) meta.insert(meta.end(), size_t(in.numNew[s]), s);
  const size_t oRows = meta.size();
  meta.insert(meta.end(), in.logitRows.begin(), in.logitRows.end());
  std::vector<size_t> oTables;
  for (auto& t : in.tables) {
    oTables.push_back(meta.size());
    meta.insert(meta.end(), t.begin(), t.end());
  }
  const size_t metaBytes = meta.size() * sizeof(int32_t);
  if (g) {  // the bucket's own buffer, at the address its graph reads
    if (!g->meta) {
      g->meta = be.alloc(metaBytes, "decode step metadata");
      g->metaBytes = metaBytes;
    }
    if (metaBytes != g->metaBytes) throw Error("forward: decode step metadata changed size");
  } else if (metaBytes > metaBytes_) {
    void* m = be.alloc(std::max(metaBytes, metaBytes_ * 2), "step metadata");
    if (meta_) be.release(meta_);
    meta_ = m;
    metaBytes_ = std::max(metaBytes, metaBytes_ * 2);
  }
  be.upload(g ? g->meta : meta_, meta.data(), metaBytes);
  const int32_t* md = static_cast<const int32_t*>(g ? g->meta : meta_);
  if (use == GraphUse::Replay) {
    be.replay(g->exec);
    return;
  }

  BatchLayout batch;
  batch.numSeqs = S;
  batch.numTokens = T;
  batch.tokenStart = md + oStart;
  batch.numNew = md + oNew;
  batch.pastLen = md + oPast;
  batch.positions = md + oPos;
  batch.seqOfToken = md + oSeq;

  auto pagedKv = [&](int layer) {
    const LayerDesc& l = d.layers[layer];
    const KvClassDesc& c = d.classes[l.kvClass];
    PagedKv kv;
    // The layer's region of each page starts pageOffset x blockSize x numKvHeads elements in,
    // so its page p is at arena + p * pageBytes as the ops index it.
    kv.arena = static_cast<char*>(arena_) +
               size_t(l.pageOffset) * blockSize_ * d.numKvHeads * dtypeSize(kvType_);
    kv.dtype = kvType_;
    kv.pageBytes = pageBytes();
    kv.numPages = numPages_ + (g ? 1 : 0);  // padded rows use the spare page
    kv.blockSize = blockSize_;
    kv.numKvHeads = d.numKvHeads;
    kv.kDim = l.kDim;
    kv.vDim = l.vDim;
    kv.blockTables = md + oTables[l.kvClass];
    kv.tableStride = in.tableStrides[l.kvClass];
    kv.pagesPerBlock = c.pagesPerBlock;
    kv.slot = l.slot;
    return kv;
  };

  const int H = d.hiddenSize, I = d.intermediateSize, hd = d.headDim;
  const int qDim = d.numHeads * hd;
  // Ends a capture that an op's exception interrupts.
  struct CaptureGuard {
    Backend* be = nullptr;
    ~CaptureGuard() {
      if (be) be->cancelCapture();
    }
  } guard;
  if (use == GraphUse::Record) {
    be.beginCapture();
    guard.be = &be;
  }

  const Weight* embed = find("embed");
  be.embedding(x_, md, T, embed->data, embed->dtype, d.vocabSize, H, d.embeddingScale);
  be.rmsnorm(h_, x_, layerWeights_[0].attnNorm->data, layerWeights_[0].attnNorm->dtype, T, H,
             d.rmsNormEps);

  auto bias = [](const Weight* w) { return w ? w->data : nullptr; };
  for (int i = 0; i < d.numLayers; ++i) {
    const LayerWeights& w = layerWeights_[i];
    const LayerDesc& l = d.layers[i];
    const RopeParams& rope = l.localRope ? d.ropeLocal : d.rope;
    const LayerDesc& src = d.layers[l.kvSource];
    if (capture_) captureAttentionInput(i, T);

    const bool owner = l.kvSource == i;
    const int kDim = d.numKvHeads * l.kDim, vDim = d.numKvHeads * l.vDim;  // low-rank: narrower
    // q, k and v from one input: one launch where the backend can fuse them (same dtype).
    Backend::MatmulOut proj[3] = {{q_, w.qProj->data, bias(w.qBias), qDim}};
    int nProj = 1;
    if (owner) {
      proj[nProj++] = {k_, w.kProj->data, bias(w.kBias), kDim};
      proj[nProj++] = {v_, w.vProj->data, bias(w.vBias), vDim};
    }
    if (!owner || (w.kProj->dtype == w.qProj->dtype && w.vProj->dtype == w.qProj->dtype)) {
      be.matmulShared(h_, w.qProj->dtype, T, H, proj, nProj);
    } else {
      be.matmul(q_, h_, w.qProj->data, w.qProj->dtype, bias(w.qBias), T, qDim, H);
      be.matmul(k_, h_, w.kProj->data, w.kProj->dtype, bias(w.kBias), T, kDim, H);
      be.matmul(v_, h_, w.vProj->data, w.vProj->dtype, bias(w.vBias), T, vDim, H);
    }
    if (d.qkNorm) be.rmsnorm(q_, q_, w.qNorm->data, w.qNorm->dtype, T * d.numHeads, hd, d.rmsNormEps);
    // An owner with full-width keys rotates q and k together (one pass where the backend can).
    const bool ropeWithKeys = owner && !l.lowRankKeys && l.kDim == hd;
    if (!ropeWithKeys) be.rope(q_, batch.positions, T, d.numHeads, hd, rope);
    if (owner) {
      if (d.qkNorm)
        be.rmsnorm(k_, k_, w.kNorm->data, w.kNorm->dtype, T * d.numKvHeads, hd, d.rmsNormEps);
      // Low-rank keys are cached pre-RoPE: attention rotates them at their positions.
      // (Full-width keys with q: appended by ropeAppendAttention below, with the attention.)
      if (l.lowRankKeys)
        be.appendKv(pagedKv(i), batch, k_, v_);
      else if (!ropeWithKeys)
        be.ropeAppendKv(pagedKv(i), batch, k_, v_, rope);
    }
    if (src.lowRankKeys) {
      // The source's basis and RoPE: the keys are the ones the source would have rotated.
      KeyBasis keys;
      keys.basis = static_cast<const float*>(layerWeights_[l.kvSource].kUp->data);
      keys.headDim = hd;
      keys.rope = src.localRope ? d.ropeLocal : d.rope;
      be.attentionLowRankKeys(attn_, q_, pagedKv(l.kvSource), batch, d.numHeads, l.window,
                              d.attnScale, d.attnSoftcap, keys);
    } else if (ropeWithKeys) {  // an owner: its own cache (kvSource == i)
      be.ropeAppendAttention(attn_, q_, d.numHeads, pagedKv(i), batch, k_, v_, rope, l.window,
                             d.attnScale, d.attnSoftcap);
    } else {
      be.attention(attn_, q_, pagedKv(l.kvSource), batch, d.numHeads, l.window, d.attnScale,
                   d.attnSoftcap);
    }
    // Each head's output is vDim wide (values at rank stay so until W_o).
    be.matmul(o_, attn_, w.oProj->data, w.oProj->dtype, nullptr, T, H, d.numHeads * l.vDim);
    if (d.sandwichNorm)
      be.rmsnorm(o_, o_, w.postAttnNorm->data, w.postAttnNorm->dtype, T, H, d.rmsNormEps);
    be.addRmsnorm(h_, x_, o_, w.mlpNorm->data, w.mlpNorm->dtype, T, H, d.rmsNormEps);

    if (w.gateProj->dtype == w.upProj->dtype) {
      be.gatedMatmul(gate_, up_, h_, w.gateProj->data, w.upProj->data, w.gateProj->dtype, T, I, H,
                     d.activation);
    } else {
      be.matmul(gate_, h_, w.gateProj->data, w.gateProj->dtype, nullptr, T, I, H);
      be.matmul(up_, h_, w.upProj->data, w.upProj->dtype, nullptr, T, I, H);
      be.gatedActivation(gate_, gate_, up_, T, I, d.activation);
    }
    be.matmul(o_, gate_, w.downProj->data, w.downProj->dtype, nullptr, T, H, I);
    if (d.sandwichNorm)
      be.rmsnorm(o_, o_, w.postMlpNorm->data, w.postMlpNorm->dtype, T, H, d.rmsNormEps);
    if (i + 1 < d.numLayers) {
      const Weight* next = layerWeights_[i + 1].attnNorm;
      be.addRmsnorm(h_, x_, o_, next->data, next->dtype, T, H, d.rmsNormEps);
    } else {
      be.add(x_, o_, size_t(T) * H);
    }
  }

  // Only the rows that need logits go through the final norm and the LM head.
  const Weight* finalNorm = find("final_norm");
  const Weight* head = d.tieWordEmbeddings ? embed : find("lm_head");
  be.gatherRows(rows_, x_, md + oRows, R, H);
  be.rmsnorm(rows_, rows_, finalNorm->data, finalNorm->dtype, R, H, d.rmsNormEps);
  be.logits(logitsDev_, rows_, head->data, head->dtype, R, d.vocabSize, H, d.finalSoftcap);
  if (use == GraphUse::Record) {
    guard.be = nullptr;
    g->exec = be.endCapture();
  }
}

}  // namespace mixattn
