#include "native_model.h"

#include <optional>
#include <string>

#include "backend_factory.h"
#include "js_fields.h"
#include "model_desc_js.h"
#include "sample_js.h"

namespace mixattn::js {

namespace {

// What a forward step resolves: the logit rows' logits (Float32Array), their greedy ids
// (Int32Array, computed on the device), or tokens sampled on the device (Backend::sample).
// Capture: the logits plus each layer's attention input (ModelRunner::forwardCapture).
enum class Output { Logits, Argmax, Sample, Capture };

// Runs one forward step off the JS thread.
class ForwardWorker : public Napi::AsyncWorker {
 public:
  // launched: ModelRunner::launch started the step; launchError: launch threw (the promise
  // rejects with it, as with the worker's own errors).
  ForwardWorker(Napi::Env env, NativeModel* owner, ModelRunner* runner, StepInput input,
                Output mode, SampleInput sampling, bool launched, std::optional<std::string> launchError)
      : Napi::AsyncWorker(env, "mixattn.forward"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        runner_(runner),
        input_(std::move(input)),
        mode_(mode),
        sampling_(std::move(sampling)),
        launched_(launched),
        launchError_(std::move(launchError)) {
    owner_->Ref();  // keep the JS object (and its runner) alive while the step runs
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    if (launchError_) return SetError(*launchError_);
    try {
      if (mode_ == Output::Argmax) {
        ids_.resize(input_.logitRows.size());
        runner_->forwardArgmax(input_, ids_.data(), launched_);
      } else if (mode_ == Output::Sample) {
        runner_->forwardSample(input_, sampling_, sampled_, launched_);
      } else if (mode_ == Output::Capture) {
        const ModelDesc& d = runner_->desc();
        logits_.resize(input_.logitRows.size() * size_t(d.vocabSize));
        attnInputs_.resize(size_t(d.numLayers) * input_.tokens.size() * size_t(d.hiddenSize));
        runner_->forwardCapture(input_, logits_.data(), attnInputs_.data());
      } else {
        logits_.resize(input_.logitRows.size() * size_t(runner_->desc().vocabSize));
        runner_->forward(input_, logits_.data(), launched_);
      }
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Value result;
    if (mode_ == Output::Argmax) {
      result = int32Array(env, ids_);
    } else if (mode_ == Output::Sample) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("ids", int32Array(env, sampled_.ids));
      o.Set("logprobs", float32Array(env, sampled_.logprobs));
      o.Set("topIds", int32Array(env, sampled_.topIds));
      o.Set("topLogprobs", float32Array(env, sampled_.topLogprobs));
      o.Set("topStride", sampled_.topStride);
      result = o;
    } else if (mode_ == Output::Capture) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("logits", float32Array(env, logits_));
      o.Set("attentionInputs", float32Array(env, attnInputs_));
      result = o;
    } else {
      result = float32Array(env, logits_);
    }
    done();
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override {
    done();
    deferred_.Reject(e.Value());
  }

 private:
  static Napi::Int32Array int32Array(Napi::Env env, const std::vector<int32_t>& v) {
    auto out = Napi::Int32Array::New(env, v.size());
    std::copy(v.begin(), v.end(), out.Data());
    return out;
  }
  static Napi::Float32Array float32Array(Napi::Env env, const std::vector<float>& v) {
    auto out = Napi::Float32Array::New(env, v.size());
    std::copy(v.begin(), v.end(), out.Data());
    return out;
  }
  void done() {
    owner_->finishStep();
    owner_->Unref();
  }
  Napi::Promise::Deferred deferred_;
  NativeModel* owner_;
  ModelRunner* runner_;
  StepInput input_;
  Output mode_;
  SampleInput sampling_;
  bool launched_;
  std::optional<std::string> launchError_;
  std::vector<float> logits_;
  std::vector<float> attnInputs_;
  std::vector<int32_t> ids_;
  SampleResult sampled_;
};

DType dtypeFromJs(Napi::Env env, const Napi::Value& v, const char* what) {
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  throw Napi::TypeError::New(env, std::string(what) + " must be 'f32' or 'bf16'");
}

// Rethrows native errors as JS errors with the same message.
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace

Napi::Function NativeModel::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {InstanceMethod<&NativeModel::SetWeight>("setWeight"),
                      InstanceMethod<&NativeModel::MissingWeights>("missingWeights"),
                      InstanceMethod<&NativeModel::AllocateKv>("allocateKv"),
                      InstanceMethod<&NativeModel::Forward>("forward"),
                      InstanceMethod<&NativeModel::Dispose>("dispose"),
                      InstanceMethod<&NativeModel::Info>("info")});
}

NativeModel::NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject())
    throw Napi::TypeError::New(env, "NativeModel(desc, options): desc and options must be objects");
  const Napi::Object opts = info[1].As<Napi::Object>();
  ModelDesc desc = modelDescFromJs(info[0].As<Napi::Object>());
  const std::string backend = string(opts, "backend", "options");
  const int threads = integer(opts, "threads", "options");
  runner_ = guarded(env, [&] {
    return std::make_unique<ModelRunner>(createBackend(backend, threads), std::move(desc));
  });
}

ModelRunner& NativeModel::runner(Napi::Env env, const char* method) {
  if (!runner_ || disposeRequested_)
    throw Napi::Error::New(env, std::string(method) + ": the model has been disposed");
  if (busy_)
    throw Napi::Error::New(env, std::string(method) + ": a forward step is still running on this model");
  return *runner_;
}

Napi::Value NativeModel::SetWeight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelRunner& r = runner(env, "setWeight");
  if (info.Length() < 4 || !info[0].IsString() || !info[2].IsArray() || !info[3].IsTypedArray())
    throw Napi::TypeError::New(env, "setWeight(name, dtype, shape, data: TypedArray)");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  const DType dtype = dtypeFromJs(env, info[1], ("setWeight('" + name + "'): dtype").c_str());
  std::vector<int64_t> shape;
  Napi::Array s = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < s.Length(); ++i) {
    Napi::Value d = s.Get(i);
    if (!d.IsNumber()) throw Napi::TypeError::New(env, "setWeight('" + name + "'): shape must hold numbers");
    shape.push_back(d.As<Napi::Number>().Int64Value());
  }
  Napi::TypedArray data = info[3].As<Napi::TypedArray>();
  const uint8_t* bytes = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  guarded(env, [&] { r.setWeight(name, dtype, shape, bytes, data.ByteLength()); });
  return env.Undefined();
}

Napi::Value NativeModel::MissingWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto missing = runner(env, "missingWeights").missingWeights();
  Napi::Array out = Napi::Array::New(env, missing.size());
  for (size_t i = 0; i < missing.size(); ++i) out.Set(uint32_t(i), missing[i]);
  return out;
}

Napi::Value NativeModel::AllocateKv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelRunner& r = runner(env, "allocateKv");
  if (info.Length() < 3 || !info[0].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "allocateKv(numPages, dtype, blockSize)");
  const DType dtype = dtypeFromJs(env, info[1], "allocateKv: dtype");
  guarded(env, [&] {
    r.allocateKv(info[0].As<Napi::Number>().Int32Value(), dtype,
                 info[2].As<Napi::Number>().Int32Value());
  });
  return Napi::Number::New(env, double(r.pageBytes()));
}

Napi::Value NativeModel::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelRunner& r = runner(env, "forward");
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "forward(step): step must be an object");
  const Napi::Object o = info[0].As<Napi::Object>();
  StepInput in;
  in.tokens = int32s(o, "tokens", "step");
  in.numNew = int32s(o, "numNew", "step");
  in.pastLen = int32s(o, "pastLen", "step");
  in.logitRows = int32s(o, "logitRows", "step");
  Napi::Array tables = array(o, "tables", "step");
  in.tables.resize(tables.Length());
  for (uint32_t c = 0; c < tables.Length(); ++c)
    in.tables[c] = int32s(tables.Get(c), "step.tables[" + std::to_string(c) + "]");
  in.tableStrides = int32s(o, "tableStrides", "step");
  // step.output: 'logits' (default), 'argmax', or 'sample' (with step.sampling).
  Output mode = Output::Logits;
  SampleInput sampling;
  if (o.Has("output") && !o.Get("output").IsUndefined()) {
    const std::string m = o.Get("output").IsString() ? o.Get("output").As<Napi::String>().Utf8Value() : "";
    if (m == "argmax") mode = Output::Argmax;
    else if (m == "sample") mode = Output::Sample;
    else if (m != "logits") throw Napi::TypeError::New(env, "step.output must be 'logits', 'argmax' or 'sample'");
  }
  // step.captureAttentionInputs: also resolve each layer's attention input (calibration).
  if (o.Has("captureAttentionInputs") && !o.Get("captureAttentionInputs").IsUndefined()) {
    if (!o.Get("captureAttentionInputs").IsBoolean())
      throw Napi::TypeError::New(env, "step.captureAttentionInputs must be a boolean");
    if (o.Get("captureAttentionInputs").As<Napi::Boolean>().Value()) {
      if (mode != Output::Logits)
        throw Napi::TypeError::New(env, "step.captureAttentionInputs needs output 'logits'");
      mode = Output::Capture;
    }
  }
  if (mode == Output::Sample)
    sampling = sampleInputOf(object(o, "sampling", "step"), "step.sampling", int(in.logitRows.size()));
  // A decode step that replays a captured graph starts here, on the JS thread (a few
  // asynchronous calls): the worker's hop to the thread pool then overlaps the device's work
  // instead of delaying it.
  bool launched = false;
  std::optional<std::string> launchError;
  if (mode != Output::Capture) {
    try {
      if (mode == Output::Sample) r.checkSampling(in, sampling);
      launched = r.launch(in);
    } catch (const std::exception& e) {
      launchError = e.what();
    }
  }
  auto* worker = new ForwardWorker(env, this, &r, std::move(in), mode, std::move(sampling),
                                   launched, std::move(launchError));
  busy_ = true;
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

void NativeModel::finishStep() {
  busy_ = false;
  if (disposeRequested_) runner_.reset();
}

Napi::Value NativeModel::Dispose(const Napi::CallbackInfo& info) {
  // A running step finishes first; its worker frees the runner afterwards.
  if (busy_) disposeRequested_ = true;
  else runner_.reset();
  return info.Env().Undefined();
}

Napi::Value NativeModel::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("disposed", !runner_ || disposeRequested_);
  if (runner_) {
    o.Set("backend", runner_->backend().name());
    o.Set("weightBytes", double(runner_->weightBytes()));
    o.Set("kvPages", runner_->numPages());
    o.Set("kvPageBytes", runner_->numPages() ? double(runner_->pageBytes()) : 0.0);
  }
  return o;
}

}  // namespace mixattn::js
