#pragma once

#include <napi.h>

#include <memory>

#include "model/runner.h"

namespace mixattn::js {

// JS class `NativeModel`: a model runner (weights + KV arena + backend) driven from
// lib/engine. Forward steps run on the libuv pool (AsyncWorker) and resolve a Promise.
class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeModel(const Napi::CallbackInfo& info);

  void finishStep();  // called by the worker on the JS thread

 private:
  Napi::Value SetWeight(const Napi::CallbackInfo& info);
  Napi::Value MissingWeights(const Napi::CallbackInfo& info);
  Napi::Value AllocateKv(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  ModelRunner& runner(Napi::Env env, const char* method);

  std::unique_ptr<ModelRunner> runner_;
  bool busy_ = false;
  bool disposeRequested_ = false;
};

}  // namespace mixattn::js
