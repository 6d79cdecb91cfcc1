#include "ops_binding.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "backend_factory.h"
#include "common/sample_check.h"
#include "cpu/bf16.h"
#include "js_fields.h"
#include "sample_js.h"
#ifdef MIXATTN_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace mixattn::js {

namespace {

// One backend per name for the process. Never destroyed: tearing a CUDA context down from a
// static destructor at exit races the driver's own shutdown.
Backend& backendFor(const std::string& name) {
  static std::map<std::string, Backend*> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return *it->second;
  Backend* b = createBackend(name, 0).release();
  cache[name] = b;
  return *b;
}

DType dtypeOf(const Napi::Object& o, const char* name, const std::string& path) {
  const std::string s = string(o, name, path);
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  throw Napi::TypeError::New(o.Env(), path + "." + name + " must be 'f32' or 'bf16'");
}

// n values: a Float32Array of that length, or a number: a seed for uniform values in [-1, 1)
// made here (benchmarks' big KV arenas and queries, too slow to fill in JS), bf16-exact.
std::vector<float> valuesOf(const Napi::Object& o, const char* name, size_t n) {
  Napi::Value v = field(o, name, "args");
  std::vector<float> out(n);
  if (v.IsNumber()) {
    uint64_t x = uint64_t(v.As<Napi::Number>().Int64Value()) * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      out[i] = cpu::bf16ToFloat(cpu::floatToBf16(float(int32_t(x >> 32)) * (1.f / 2147483648.f)));
    }
    return out;
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      v.As<Napi::Float32Array>().ElementLength() != n)
    throw Napi::TypeError::New(o.Env(), std::string("args.") + name + " must be a seed or a Float32Array of " +
                                            std::to_string(n) + " values");
  std::memcpy(out.data(), v.As<Napi::Float32Array>().Data(), n * 4);
  return out;
}

Napi::Float32Array f32s(const Napi::Object& o, const char* name) {
  Napi::Value v = field(o, name, "args");
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(o.Env(), std::string("args.") + name + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

// Converts f32 values to `t` storage bytes.
std::vector<uint8_t> encode(const float* src, size_t n, DType t) {
  std::vector<uint8_t> out(n * dtypeSize(t));
  if (t == DType::F32) {
    if (n) std::memcpy(out.data(), src, n * 4);
  } else {
    auto* d = reinterpret_cast<uint16_t*>(out.data());
    for (size_t i = 0; i < n; ++i) d[i] = cpu::floatToBf16(src[i]);
  }
  return out;
}

// The buffers of one op on one backend, released when it ends (also on error).
class OpBuffers {
 public:
  OpBuffers(Napi::Env env, Backend& be) : env_(env), be_(be), act_(be.activationDType()) {}
  ~OpBuffers() {
    for (void* p : bufs_) be_.release(p);
  }
  void* alloc(size_t bytes) {
    void* p = be_.alloc(bytes ? bytes : 4, "runOp buffer");
    bufs_.push_back(p);
    return p;
  }
  void* upload(const void* src, size_t bytes) {
    void* p = alloc(bytes);
    if (bytes) be_.upload(p, src, bytes);
    return p;
  }
  void* values(const float* src, size_t n, DType t) {
    std::vector<uint8_t> b = encode(src, n, t);
    return upload(b.data(), b.size());
  }
  void* act(const Napi::Float32Array& a) { return values(a.Data(), a.ElementLength(), act_); }
  void* ints(const std::vector<int32_t>& v) { return upload(v.data(), v.size() * 4); }
  // An output of n elements of `t` (default: activations), every byte 0xFF.
  void* poisoned(size_t n, DType t) {
    std::vector<uint8_t> b(n * dtypeSize(t), 0xFF);
    return upload(b.data(), b.size());
  }
  void* poisoned(size_t n) { return poisoned(n, act_); }
  // A weight: bytes as given, Float32Array for 'f32', Uint16Array for 'bf16'.
  void* weight(const Napi::Object& o, const char* name, DType t) {
    Napi::Value v = field(o, name, "args");
    const napi_typedarray_type want = t == DType::F32 ? napi_float32_array : napi_uint16_array;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
      throw Napi::TypeError::New(env_, std::string("args.") + name + " must be a " +
                                           (t == DType::F32 ? "Float32Array" : "Uint16Array"));
    Napi::TypedArray a = v.As<Napi::TypedArray>();
    return upload(static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), a.ByteLength());
  }
  Napi::Float32Array read(const void* p, size_t n, DType t) {
    std::vector<uint8_t> b(n * dtypeSize(t));
    be_.download(b.data(), p, b.size());
    auto out = Napi::Float32Array::New(env_, n);
    if (t == DType::F32) {
      if (n) std::memcpy(out.Data(), b.data(), n * 4);
    } else {
      auto* s = reinterpret_cast<const uint16_t*>(b.data());
      for (size_t i = 0; i < n; ++i) out[i] = cpu::bf16ToFloat(s[i]);
    }
    return out;
  }
  Napi::Float32Array read(const void* p, size_t n) { return read(p, n, act_); }

 private:
  Napi::Env env_;
  Backend& be_;
  DType act_;
  std::vector<void*> bufs_;
};

// The step layout from numNew/pastLen, built as the runner builds it.
BatchLayout batchOf(const Napi::Object& args, OpBuffers& bufs) {
  const std::vector<int32_t> numNew = int32s(args, "numNew", "args");
  const std::vector<int32_t> pastLen = int32s(args, "pastLen", "args");
  if (numNew.size() != pastLen.size())
    throw Napi::TypeError::New(args.Env(), "args.numNew and args.pastLen must have one entry per sequence");
  const int S = int(numNew.size());
  std::vector<int32_t> start, pos, seq;
  for (int s = 0, row = 0; s < S; row += numNew[s], ++s) {
    start.push_back(row);
    for (int i = 0; i < numNew[s]; ++i) {
      pos.push_back(pastLen[s] + i);
      seq.push_back(s);
    }
  }
  BatchLayout b;
  b.numSeqs = S;
  b.numTokens = int(pos.size());
  b.tokenStart = static_cast<const int32_t*>(bufs.ints(start));
  b.numNew = static_cast<const int32_t*>(bufs.ints(numNew));
  b.pastLen = static_cast<const int32_t*>(bufs.ints(pastLen));
  b.positions = static_cast<const int32_t*>(bufs.ints(pos));
  b.seqOfToken = static_cast<const int32_t*>(bufs.ints(seq));
  return b;
}

// args.kv = { dtype, numPages, blockSize, numKvHeads, kDim, vDim, pagesPerBlock, slot,
//             tableStride, tables: Int32Array, arena: Float32Array (numPages pages) }.
PagedKv kvOf(const Napi::Object& args, OpBuffers& bufs, size_t* arenaElems) {
  const Napi::Object o = object(args, "kv", "args");
  PagedKv kv;
  kv.dtype = dtypeOf(o, "dtype", "args.kv");
  kv.numPages = integer(o, "numPages", "args.kv");
  kv.blockSize = integer(o, "blockSize", "args.kv");
  kv.numKvHeads = integer(o, "numKvHeads", "args.kv");
  kv.kDim = integer(o, "kDim", "args.kv");
  kv.vDim = integer(o, "vDim", "args.kv");
  kv.pagesPerBlock = integer(o, "pagesPerBlock", "args.kv");
  kv.slot = integer(o, "slot", "args.kv");
  kv.tableStride = integer(o, "tableStride", "args.kv");
  const size_t pageElems = size_t(kv.blockSize) * kv.numKvHeads * (kv.kDim + kv.vDim);
  kv.pageBytes = pageElems * dtypeSize(kv.dtype);
  *arenaElems = pageElems * size_t(kv.numPages);
  kv.arena = bufs.values(valuesOf(o, "arena", *arenaElems).data(), *arenaElems, kv.dtype);
  kv.blockTables = static_cast<const int32_t*>(bufs.ints(int32s(o, "tables", "args.kv")));
  return kv;
}

RopeParams ropeOf(const Napi::Object& args) {
  const Napi::Object o = object(args, "rope", "args");
  RopeParams p;
  p.theta = float(number(o, "theta", "args.rope"));
  const std::string s = string(o, "scaling", "args.rope");
  p.scaling = s == "linear" ? RopeScaling::Linear : s == "llama3" ? RopeScaling::Llama3 : RopeScaling::Default;
  if (o.Has("factor")) p.factor = float(number(o, "factor", "args.rope"));
  if (o.Has("lowFreqFactor")) p.lowFreqFactor = float(number(o, "lowFreqFactor", "args.rope"));
  if (o.Has("highFreqFactor")) p.highFreqFactor = float(number(o, "highFreqFactor", "args.rope"));
  if (o.Has("originalMaxPosition")) p.originalMaxPosition = integer(o, "originalMaxPosition", "args.rope");
  return p;
}

// Forces a CUDA attention kernel for one call (args.path), back to "auto" afterwards.
struct PathOverride {
  bool set = false;
  PathOverride(const Napi::Object& args, const std::string& backend) {
    if (!args.Has("path") || backend != "cuda") return;
#ifdef MIXATTN_WITH_CUDA
    cuda::setAttentionPath(string(args, "path", "args"));
    set = true;
#endif
  }
  ~PathOverride() {
#ifdef MIXATTN_WITH_CUDA
    if (set) cuda::setAttentionPath("auto");
#endif
  }
};

Napi::Object run(Napi::Env env, const std::string& backend, const std::string& op,
                 const Napi::Object& a) {
  Backend& be = backendFor(backend);
  OpBuffers b(env, be);
  Napi::Object out = Napi::Object::New(env);
  auto I = [&](const char* n) { return integer(a, n, "args"); };
  auto F = [&](const char* n) { return float(number(a, n, "args")); };
  if (op == "embedding") {
    const std::vector<int32_t> tokens = int32s(a, "tokens", "args");
    const DType t = dtypeOf(a, "tableType", "args");
    const int dim = I("dim"), n = int(tokens.size());
    void* o = b.poisoned(size_t(n) * dim);
    be.embedding(o, static_cast<const int32_t*>(b.ints(tokens)), n, b.weight(a, "table", t), t,
                 I("vocab"), dim, F("scale"));
    out.Set("out", b.read(o, size_t(n) * dim));
  } else if (op == "rmsnorm" || op == "addRmsnorm") {
    const DType t = dtypeOf(a, "wType", "args");
    const int rows = I("rows"), dim = I("dim");
    const size_t n = size_t(rows) * dim;
    void* o = b.poisoned(n);
    void* w = b.weight(a, "w", t);
    if (op == "rmsnorm") {
      be.rmsnorm(o, b.act(f32s(a, "x")), w, t, rows, dim, F("eps"));
    } else {
      void* res = b.act(f32s(a, "residual"));
      be.addRmsnorm(o, res, b.act(f32s(a, "delta")), w, t, rows, dim, F("eps"));
      out.Set("residual", b.read(res, n));
    }
    out.Set("out", b.read(o, n));
  } else if (op == "add") {
    Napi::Float32Array x = f32s(a, "inout");
    void* io = b.act(x);
    be.add(io, b.act(f32s(a, "in")), x.ElementLength());
    out.Set("out", b.read(io, x.ElementLength()));
  } else if (op == "matmul" || op == "logits") {
    const DType t = dtypeOf(a, "wType", "args");
    const int M = I("M"), N = I("N"), K = I("K");
    void* x = b.act(f32s(a, "x"));
    void* w = b.weight(a, "w", t);
    if (op == "matmul") {
      void* bias = a.Has("bias") && !a.Get("bias").IsNull() ? b.weight(a, "bias", t) : nullptr;
      void* o = b.poisoned(size_t(M) * N);
      be.matmul(o, x, w, t, bias, M, N, K);
      out.Set("out", b.read(o, size_t(M) * N));
    } else {
      void* o = b.poisoned(size_t(M) * N, DType::F32);
      be.logits(static_cast<float*>(o), x, w, t, M, N, K, F("softcap"));
      out.Set("out", b.read(o, size_t(M) * N, DType::F32));
    }
  } else if (op == "argmax") {
    // args.logits: Float32Array [rows, vocab] (fp32 on every backend); out: the ids as floats.
    Napi::Float32Array x = f32s(a, "logits");
    const int rows = I("rows"), vocab = I("vocab");
    if (size_t(rows) * vocab != x.ElementLength())
      throw Napi::TypeError::New(env, "args.logits must hold rows * vocab values");
    void* l = b.values(x.Data(), x.ElementLength(), DType::F32);
    void* o = b.poisoned(size_t(rows), DType::F32);  // int32 slots, poisoned as 0xFFFFFFFF
    be.argmax(static_cast<int32_t*>(o), static_cast<const float*>(l), rows, vocab);
    std::vector<int32_t> ids(static_cast<size_t>(rows));
    be.download(ids.data(), o, ids.size() * 4);
    auto ids32 = Napi::Float32Array::New(env, ids.size());
    for (size_t i = 0; i < ids.size(); ++i) ids32[i] = float(ids[i]);
    out.Set("out", ids32);
  } else if (op == "sample") {
    // args.logits: Float32Array [rows, vocab]; args.params: Float64Array (sampleInputOf's
    // layout), args.penalties / args.penaltyOffsets: the rows' (id, count) pairs. Out: ids and
    // topIds as floats, logprobs, topLogprobs, and the penalised logits, all of the first step.
    // args.repeat = r > 0 (benchmarks): r more steps timed as the runner runs them (upload the
    // rows and pairs, sample, download the results), `seconds` per step, and `downloadSeconds`:
    // what downloading the logits instead would take per step. The timed steps compound the
    // penalties in place, so their tokens differ; the outputs are read before them.
    Napi::Float32Array x = f32s(a, "logits");
    const int rows = I("rows"), vocab = I("vocab");
    if (rows < 0 || vocab < 1 || size_t(rows) * vocab != x.ElementLength())
      throw Napi::TypeError::New(env, "args.logits must hold rows * vocab values");
    SampleInput in = sampleInputOf(a, "args", rows);
    int K = 0;
    for (const SampleRow& r : in.rows) K = std::max(K, int(r.topLogprobs));
    checkSampleInputs(in.rows.data(), rows, in.penalties.data(), in.penalties.size() / 2, vocab, K);
    void* l = b.values(x.Data(), x.ElementLength(), DType::F32);
    void* pr = b.upload(in.rows.data(), in.rows.size() * sizeof(SampleRow));
    void* pp = b.ints(in.penalties);
    // One output buffer, laid out as the runner's (ids, logprobs, top ids, top logprobs).
    const size_t outN = size_t(rows) * (2 + 2 * size_t(K));
    auto* o = static_cast<int32_t*>(b.poisoned(outN, DType::F32));
    SampleOut so;
    so.ids = o;
    so.logprobs = reinterpret_cast<float*>(o + rows);
    so.topIds = o + 2 * size_t(rows);
    so.topLogprobs = reinterpret_cast<float*>(o + 2 * size_t(rows) + size_t(rows) * K);
    so.topStride = K;
    auto once = [&] {
      be.sample(so, static_cast<float*>(l), static_cast<const SampleRow*>(pr),
                static_cast<const int32_t*>(pp), rows, vocab);
    };
    once();
    auto intsAsFloats = [&](const int32_t* p, size_t n) {
      std::vector<int32_t> v(n);
      if (n) be.download(v.data(), p, n * 4);
      auto f = Napi::Float32Array::New(env, n);
      for (size_t i = 0; i < n; ++i) f[i] = float(v[i]);
      return f;
    };
    out.Set("ids", intsAsFloats(so.ids, size_t(rows)));
    out.Set("logprobs", b.read(so.logprobs, size_t(rows), DType::F32));
    out.Set("topIds", intsAsFloats(so.topIds, size_t(rows) * K));
    out.Set("topLogprobs", b.read(so.topLogprobs, size_t(rows) * K, DType::F32));
    out.Set("penalised", b.read(l, x.ElementLength(), DType::F32));
    const int repeat = a.Has("repeat") ? I("repeat") : 0;
    if (repeat > 0) {
      auto timed = [&](auto&& step) {
        be.synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < repeat; ++i) step();
        be.synchronize();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeat;
      };
      std::vector<int32_t> results(outN);
      out.Set("seconds", timed([&] {
        be.upload(pr, in.rows.data(), in.rows.size() * sizeof(SampleRow));
        if (!in.penalties.empty()) be.upload(pp, in.penalties.data(), in.penalties.size() * 4);
        once();
        be.download(results.data(), o, outN * 4);
      }));
      std::vector<float> host(x.ElementLength());
      out.Set("downloadSeconds", timed([&] { be.download(host.data(), l, host.size() * 4); }));
    }
  } else if (op == "gatherRows") {
    const std::vector<int32_t> index = int32s(a, "index", "args");
    const int dim = I("dim"), rows = int(index.size());
    void* o = b.poisoned(size_t(rows) * dim);
    be.gatherRows(o, b.act(f32s(a, "x")), static_cast<const int32_t*>(b.ints(index)), rows, dim);
    out.Set("out", b.read(o, size_t(rows) * dim));
  } else if (op == "rope") {
    const std::vector<int32_t> positions = int32s(a, "positions", "args");
    Napi::Float32Array x = f32s(a, "x");
    void* xd = b.act(x);
    be.rope(xd, static_cast<const int32_t*>(b.ints(positions)), int(positions.size()),
            I("heads"), I("headDim"), ropeOf(a));
    out.Set("out", b.read(xd, x.ElementLength()));
  } else if (op == "matmulShared") {
    // args: x [M, K], M, K, wType, ws: [{w, N, bias?}] (up to 8); out: outs[j] [M, N_j].
    const DType t = dtypeOf(a, "wType", "args");
    const int M = I("M"), K = I("K");
    void* x = b.act(f32s(a, "x"));
    if (!a.Has("ws") || !a.Get("ws").IsArray())
      throw Napi::TypeError::New(env, "args.ws must be an array of {w, N, bias?}");
    Napi::Array ws = a.Get("ws").As<Napi::Array>();
    if (ws.Length() < 1 || ws.Length() > 8)
      throw Napi::TypeError::New(env, "args.ws must hold 1 to 8 weights");
    std::vector<Backend::MatmulOut> outs(ws.Length());
    for (uint32_t j = 0; j < ws.Length(); ++j) {
      Napi::Object wj = ws.Get(j).As<Napi::Object>();
      outs[j].N = wj.Get("N").As<Napi::Number>().Int32Value();
      outs[j].w = b.weight(wj, "w", t);
      outs[j].bias = wj.Has("bias") && !wj.Get("bias").IsNull() ? b.weight(wj, "bias", t) : nullptr;
      outs[j].out = b.poisoned(size_t(M) * outs[j].N);
    }
    be.matmulShared(x, t, M, K, outs.data(), int(outs.size()));
    Napi::Array res = Napi::Array::New(env, outs.size());
    for (uint32_t j = 0; j < outs.size(); ++j) res.Set(j, b.read(outs[j].out, size_t(M) * outs[j].N));
    out.Set("outs", res);
  } else if (op == "gatedMatmul") {
    // args: x [M, K], wGate, wUp [I, K], wType, M, I, K, act; out: [M, I].
    const DType t = dtypeOf(a, "wType", "args");
    const int M = I("M"), N = I("I"), K = I("K");
    const std::string act = string(a, "act", "args");
    void* o = b.poisoned(size_t(M) * N);
    void* scratch = b.poisoned(size_t(M) * N);
    be.gatedMatmul(o, scratch, b.act(f32s(a, "x")), b.weight(a, "wGate", t), b.weight(a, "wUp", t), t,
                   M, N, K, act == "gelu_tanh" ? Activation::GeluTanh : Activation::SiLU);
    out.Set("out", b.read(o, size_t(M) * N));
  } else if (op == "gatedActivation") {
    const int T = I("T"), N = I("I");
    const std::string act = string(a, "act", "args");
    void* o = b.poisoned(size_t(T) * N);
    be.gatedActivation(o, b.act(f32s(a, "gate")), b.act(f32s(a, "up")), T, N,
                       act == "gelu_tanh" ? Activation::GeluTanh : Activation::SiLU);
    out.Set("out", b.read(o, size_t(T) * N));
  } else if (op == "appendKv" || op == "ropeAppendKv" || op == "ropeQAppendKv" ||
             op == "ropeAppendAttention" || op == "attention" || op == "attentionLowRankKeys") {
    size_t arenaElems = 0;
    const PagedKv kv = kvOf(a, b, &arenaElems);
    const BatchLayout batch = batchOf(a, b);
    if (op == "appendKv") {
      be.appendKv(kv, batch, b.act(f32s(a, "k")), b.act(f32s(a, "v")));
      out.Set("arena", b.read(kv.arena, arenaElems, kv.dtype));
    } else if (op == "ropeAppendKv") {
      be.ropeAppendKv(kv, batch, b.act(f32s(a, "k")), b.act(f32s(a, "v")), ropeOf(a));
      out.Set("arena", b.read(kv.arena, arenaElems, kv.dtype));
    } else if (op == "ropeQAppendKv") {
      // args as ropeAppendKv, plus q [T, numHeads, kDim]; out: arena and the rotated q.
      Napi::Float32Array q = f32s(a, "q");
      void* qd = b.act(q);
      be.ropeQAppendKv(qd, I("numHeads"), kv, batch, b.act(f32s(a, "k")), b.act(f32s(a, "v")), ropeOf(a));
      out.Set("arena", b.read(kv.arena, arenaElems, kv.dtype));
      out.Set("q", b.read(qd, q.ElementLength()));
    } else if (op == "ropeAppendAttention") {
      // args as ropeQAppendKv plus window, scale, softcap; out: arena and the attention output.
      PathOverride path(a, backend);
      const int heads = I("numHeads");
      const size_t n = size_t(batch.numTokens) * heads * kv.vDim;
      void* o = b.poisoned(n);
      be.ropeAppendAttention(o, b.act(f32s(a, "q")), heads, kv, batch, b.act(f32s(a, "k")),
                             b.act(f32s(a, "v")), ropeOf(a), I("window"), F("scale"), F("softcap"));
      out.Set("arena", b.read(kv.arena, arenaElems, kv.dtype));
      out.Set("out", b.read(o, n));
    } else {
      PathOverride path(a, backend);
      const int heads = I("numHeads");
      // Low-rank keys: args.headDim (q's width), args.basis (U, [headDim][kv.kDim] fp32: a
      // Float32Array or a seed) and args.rope.
      const bool lowRank = op == "attentionLowRankKeys";
      KeyBasis keys;
      if (lowRank) {
        keys.headDim = I("headDim");
        const size_t nb = size_t(std::max(keys.headDim, 0)) * size_t(std::max(kv.kDim, 0));
        keys.basis = static_cast<const float*>(b.values(valuesOf(a, "basis", nb).data(), nb, DType::F32));
        keys.rope = ropeOf(a);
      }
      const size_t n = size_t(batch.numTokens) * heads * kv.vDim;
      const size_t nq = size_t(batch.numTokens) * heads * (lowRank ? keys.headDim : kv.kDim);
      void* o = b.poisoned(n);
      void* q = b.values(valuesOf(a, "q", nq).data(), nq, be.activationDType());
      auto once = [&] {
        if (lowRank)
          be.attentionLowRankKeys(o, q, kv, batch, heads, I("window"), F("scale"), F("softcap"), keys);
        else
          be.attention(o, q, kv, batch, heads, I("window"), F("scale"), F("softcap"));
      };
      once();
      // args.repeat = r > 0: then r more runs, timed together (benchmarks): seconds per run.
      const int repeat = a.Has("repeat") ? I("repeat") : 0;
      if (repeat > 0) {
        be.synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < repeat; ++i) once();
        be.synchronize();
        const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
        out.Set("seconds", dt.count() / repeat);
      }
      out.Set("out", b.read(o, n));
    }
  } else {
    throw Error("runOp: unknown op '" + op + "'");
  }
  return out;
}

}  // namespace

Napi::Value RunOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject())
    throw Napi::TypeError::New(env, "runOp(backend: string, op: string, args: object)");
  const std::string backend = info[0].As<Napi::String>().Utf8Value();
  const std::string op = info[1].As<Napi::String>().Utf8Value();
  try {
    return run(env, backend, op, info[2].As<Napi::Object>());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace mixattn::js
