// RoPE inverse frequencies, computed once on the host in double and shared by every backend
// so the CPU and CUDA twins rotate by exactly the same angles.
#pragma once

#include <vector>

#include "backend.h"

namespace mixattn {

// theta^(-2i/d) for i < d/2, then HF's linear or llama3 scaling. Throws Error on an odd or
// non-positive head dim, a non-positive theta or factor, or an unknown scaling.
std::vector<double> ropeInverseFrequencies(const RopeParams& p, int headDim);

}  // namespace mixattn
