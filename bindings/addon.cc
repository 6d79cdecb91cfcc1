// The mixattn N-API addon: NativeModel (runner + weights + KV arena) and backend discovery.
#include <napi.h>

#include <thread>

#include "cuda/cuda_probe.h"
#include "native_model.h"
#include "ops_binding.h"

namespace {

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("available", true);
  cpu.Set("threads", double(std::thread::hardware_concurrency()));
  out.Set("cpu", cpu);
  const mixattn::CudaProbe p = mixattn::probeCuda();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("built", p.built);
  cuda.Set("deviceCount", p.deviceCount);
  cuda.Set("deviceName", p.deviceName);
  const bool available = p.built && p.deviceCount > 0;
  cuda.Set("available", available);
  cuda.Set("reason", available ? "" : p.error.empty() ? "no CUDA device found" : p.error);
  out.Set("cuda", cuda);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", mixattn::js::NativeModel::Define(env));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo));
  exports.Set("runOp", Napi::Function::New(env, mixattn::js::RunOp));
  return exports;
}

}  // namespace

NODE_API_MODULE(mixattn, Init)
