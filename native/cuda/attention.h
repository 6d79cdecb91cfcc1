// Host entry point of the CUDA attention (attention.cc): validates, picks a kernel, launches.
#pragma once

#include <functional>

#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

enum class AttnPath : int { Auto = 0, Generic = 1, Decode = 2, Prefill = 3 };

// `scratch(bytes)` returns device memory the kernels may use until the next op.
void attention(const Ctx& c, void* out, const void* q, const PagedKv& kv,
               const BatchLayout& batch, int numHeads, int window, float scale, float softcap,
               const std::function<float*(size_t)>& scratch);

}  // namespace cuda
}  // namespace mixattn
