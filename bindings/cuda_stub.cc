// Builds without the CUDA backend report it as not compiled in.
#ifndef MIXATTN_WITH_CUDA
#include "cuda/cuda_probe.h"

namespace mixattn {
CudaProbe probeCuda() {
  CudaProbe p;
  p.error = "mixattn was built without the CUDA backend (no nvcc or cuBLAS at build time, or MIXATTN_CUDA=OFF; see the install log)";
  return p;
}
}  // namespace mixattn
#endif
