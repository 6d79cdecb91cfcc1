// cuBLASLt GEMMs in the backend's row-major convention: D[M,N] = X[M,K] · W[N,K]ᵀ (+ bias[N]),
// fp32 compute. Plans (descriptors + the heuristic's algorithm) are cached per shape/types.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <tuple>

namespace mixattn {
namespace cuda {

class Gemm {
 public:
  Gemm();  // loads cuBLASLt, creates the handle and a workspace; throws Error
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // bias (may be null) has D's type. `op` names the caller in errors.
  void run(cudaStream_t stream, void* d, cudaDataType dType, const void* x, cudaDataType xType,
           const void* w, cudaDataType wType, const void* bias, int M, int N, int K,
           const char* op);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using Key = std::tuple<int, int, int, int, int, int, bool>;
  Plan& plan(const Key& k, const char* op);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspaceBytes_ = 32u << 20;
  std::map<Key, Plan> plans_;
};

}  // namespace cuda
}  // namespace mixattn
