// Checks of a PagedKv's layout shared by every backend's append and attention ops, so a bad
// description is the same clear Error on the CPU and the GPU.
#pragma once

#include "backend.h"

namespace mixattn {

// Throws Error("<op>: ...") unless the arena is set, the sizes are positive, slot is inside
// [0, pagesPerBlock) and pageBytes holds the page layout.
void checkPagedKvLayout(const PagedKv& kv, const char* op);

// Throws Error("<op>: ...") unless the attention scale is positive and finite and the
// soft-cap finite and >= 0 (0: off). The kernels mask scores before they scale them, so a
// scale <= 0 would turn masked keys into NaN or +inf.
void checkAttentionScalars(float scale, float softcap, const char* op);

}  // namespace mixattn
