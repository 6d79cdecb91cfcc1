#include "backend_factory.h"

#include "cpu/cpu_backend.h"
#include "cuda/cuda_probe.h"
#ifdef MIXATTN_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace mixattn::js {

std::unique_ptr<Backend> createBackend(const std::string& name, int threads) {
  if (name == "cpu") return createCpuBackend(threads);
  if (name == "cuda") {
    CudaProbe p = probeCuda();
    if (!p.built || p.deviceCount == 0)
      throw Error("backend 'cuda' is not available: " +
                  (p.error.empty() ? std::string("no CUDA device found") : p.error));
#ifdef MIXATTN_WITH_CUDA
    try {
      return createCudaBackend(0);
    } catch (const Error& e) {
      throw Error(std::string("backend 'cuda' is not available: ") + e.what());
    }
#endif
  }
  throw Error("backend '" + name + "' is unknown (expected 'cpu' or 'cuda')");
}

}  // namespace mixattn::js
