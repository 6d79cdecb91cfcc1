// The CPU backend: C++17 and std::thread only, fp32 math, f32 or bf16 weights and KV pages,
// f32 activations. Always built; the reference the CUDA kernels are compared against.
#pragma once

#include <memory>

#include "backend.h"

namespace mixattn {

// threads <= 0 uses std::thread::hardware_concurrency(). The calling thread counts as one.
std::unique_ptr<Backend> createCpuBackend(int threads);

}  // namespace mixattn
