// cuBLASLt, loaded with dlopen the first time a CUDA backend needs it (cmake/cuda.cmake says
// why it is not linked). Only the entry points the backend calls are resolved; their types
// come from cublasLt.h, so a mismatch is a compile error, not a crash.
#pragma once

#include <cublasLt.h>

namespace mixattn {
namespace cuda {

struct CublasLtApi {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtDestroy) destroy;
  decltype(&cublasLtGetVersion) getVersion;
  decltype(&cublasLtMatmulDescCreate) matmulDescCreate;
  decltype(&cublasLtMatmulDescDestroy) matmulDescDestroy;
  decltype(&cublasLtMatmulDescSetAttribute) matmulDescSetAttribute;
  decltype(&cublasLtMatrixLayoutCreate) layoutCreate;
  decltype(&cublasLtMatrixLayoutDestroy) layoutDestroy;
  decltype(&cublasLtMatmulPreferenceCreate) preferenceCreate;
  decltype(&cublasLtMatmulPreferenceDestroy) preferenceDestroy;
  decltype(&cublasLtMatmulPreferenceSetAttribute) preferenceSetAttribute;
  decltype(&cublasLtMatmulAlgoGetHeuristic) algoGetHeuristic;
  decltype(&cublasLtMatmul) matmul;
  const char* path;  // the file that was loaded
};

// Loads the library once (thread-safe); throws mixattn::Error naming every path tried.
const CublasLtApi& cublasLt();

}  // namespace cuda
}  // namespace mixattn
