// Checks of a PagedKv's layout shared by every backend's append and attention ops, so a bad
// description is the same clear Error on the CPU and the GPU.
#pragma once

#include "backend.h"

namespace mixattn {

// Throws Error("<op>: ...") unless the arena is set, the sizes are positive, slot is inside
// [0, pagesPerBlock) and pageBytes holds the page layout.
void checkPagedKvLayout(const PagedKv& kv, const char* op);

}  // namespace mixattn
