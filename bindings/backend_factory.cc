#include "backend_factory.h"

#include "cpu/cpu_backend.h"
#include "cuda/cuda_probe.h"

namespace mixattn::js {

std::unique_ptr<Backend> createBackend(const std::string& name, int threads) {
  if (name == "cpu") return createCpuBackend(threads);
  if (name == "cuda") {
    CudaProbe p = probeCuda();
    if (!p.built || p.deviceCount == 0)
      throw Error("backend 'cuda' is not available: " +
                  (p.error.empty() ? std::string("no CUDA device found") : p.error));
    // The kernels arrive with the CUDA backend issue; the build and device probe are here.
    throw Error("backend 'cuda' is not available: its kernels are not built into this version");
  }
  throw Error("backend '" + name + "' is unknown (expected 'cpu' or 'cuda')");
}

}  // namespace mixattn::js
