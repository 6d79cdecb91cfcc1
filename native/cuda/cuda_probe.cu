#include <cuda_runtime.h>

#include "cuda/cuda_probe.h"

namespace mixattn {

CudaProbe probeCuda() {
  CudaProbe p;
  p.built = true;
  cudaError_t err = cudaGetDeviceCount(&p.deviceCount);
  if (err != cudaSuccess) {
    p.deviceCount = 0;
    p.error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return p;
  }
  if (p.deviceCount > 0) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) p.deviceName = prop.name;
  }
  return p;
}

}  // namespace mixattn
