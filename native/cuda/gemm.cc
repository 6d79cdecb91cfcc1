#include "cuda/gemm.h"

#include <string>

#include "backend.h"
#include "cuda/cublaslt_loader.h"
#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

namespace {
void lt(cublasStatus_t s, const char* op, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string(op) + ": cuBLASLt " + what + " failed (status " +
                std::to_string(int(s)) + ")");
}
}  // namespace

Gemm::Gemm() {
  const CublasLtApi& api = cublasLt();
  lt(api.create(&handle_), "cuda backend", "create");
  if (cudaMalloc(&workspace_, workspaceBytes_) != cudaSuccess) {
    cudaGetLastError();
    api.destroy(handle_);
    throw Error("out of GPU memory allocating the cuBLASLt workspace (" +
                std::to_string(workspaceBytes_) + " bytes)");
  }
}

Gemm::~Gemm() {
  const CublasLtApi& api = cublasLt();
  for (auto& [k, p] : plans_) {
    api.layoutDestroy(p.a);
    api.layoutDestroy(p.b);
    api.layoutDestroy(p.c);
    api.matmulDescDestroy(p.desc);
  }
  cudaFree(workspace_);
  api.destroy(handle_);
}

// Column-major view of the row-major problem: Dᵀ[N,M] = W[N,K] · Xᵀ[K,M], i.e. A = W stored
// K x N (transposed), B = X stored K x M, C = D stored N x M.
Gemm::Plan& Gemm::plan(const Key& key, const char* op) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [M, N, K, dT, xT, wT, bias] = key;
  const CublasLtApi& api = cublasLt();
  Plan p;
  try {
    lt(api.matmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), op, "matmulDescCreate");
    const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    lt(api.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA), op, "set TRANSA");
    lt(api.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB), op, "set TRANSB");
    const cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    lt(api.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), op, "set EPILOGUE");
    lt(api.layoutCreate(&p.a, cudaDataType(wT), K, N, K), op, "layout A");
    lt(api.layoutCreate(&p.b, cudaDataType(xT), K, M, K), op, "layout B");
    lt(api.layoutCreate(&p.c, cudaDataType(dT), N, M, N), op, "layout C");
    cublasLtMatmulPreference_t pref = nullptr;
    lt(api.preferenceCreate(&pref), op, "preferenceCreate");
    api.preferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspaceBytes_,
                               sizeof workspaceBytes_);
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t s =
        api.algoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
    api.preferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found == 0)
      throw Error(std::string(op) + ": cuBLASLt has no algorithm for M=" + std::to_string(M) +
                  " N=" + std::to_string(N) + " K=" + std::to_string(K) + " (status " +
                  std::to_string(int(s)) + ")");
    p.algo = res.algo;
  } catch (...) {
    if (p.a) api.layoutDestroy(p.a);
    if (p.b) api.layoutDestroy(p.b);
    if (p.c) api.layoutDestroy(p.c);
    if (p.desc) api.matmulDescDestroy(p.desc);
    throw;
  }
  return plans_.emplace(key, p).first->second;
}

void Gemm::run(cudaStream_t stream, void* d, cudaDataType dType, const void* x,
               cudaDataType xType, const void* w, cudaDataType wType, const void* bias, int M,
               int N, int K, const char* op) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) throw Error(std::string(op) + ": K must be positive");
  Plan& p = plan(Key{M, N, K, int(dType), int(xType), int(wType), bias != nullptr}, op);
  const CublasLtApi& api = cublasLt();
  if (bias)
    lt(api.matmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
       op, "set BIAS_POINTER");
  const float alpha = 1.f, beta = 0.f;
  lt(api.matmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, d, p.c, d, p.c, &p.algo,
                workspace_, workspaceBytes_, stream),
     op, "matmul");
}

}  // namespace cuda
}  // namespace mixattn
