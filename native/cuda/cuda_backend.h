// The CUDA backend: bf16 activations, f32 or bf16 weights and KV pages, fp32 accumulation,
// cuBLASLt GEMMs, every op asynchronous on one stream; download and synchronize wait for it
// and raise what the kernels recorded (device_error.h). Plain C++ header: the bindings
// include it without CUDA.
#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace mixattn {

// Throws Error when the device does not exist, the driver is missing or cuBLASLt cannot be
// loaded.
std::unique_ptr<Backend> createCudaBackend(int device);

namespace cuda {
// Forces the attention kernel of every CUDA backend in the process: "auto" (default),
// "generic", "decode", "decode:combine" (the decode kernels with the separate split-merge
// kernel), "prefill" or "prefill:N" (tests and benchmarks). A forced kernel that does not
// support a call's layout makes that call throw.
void setAttentionPath(const std::string& path);
}  // namespace cuda

}  // namespace mixattn
