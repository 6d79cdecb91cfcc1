#include "cuda/cublaslt_loader.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "backend.h"

namespace mixattn {
namespace cuda {

namespace {

template <typename F>
void resolve(void* lib, F& fn, const char* name, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
}

struct Loaded {
  CublasLtApi api{};
  std::string error;
};

Loaded load() {
  Loaded out;
  // The library found at build time first (the toolkit's or the pip wheel's), then whatever
  // the dynamic loader finds (LD_LIBRARY_PATH, ldconfig).
  const char* candidates[] = {
#ifdef MIXATTN_CUBLASLT_PATH
      MIXATTN_CUBLASLT_PATH,
#endif
      "libcublasLt.so.13", "libcublasLt.so"};
  void* lib = nullptr;
  std::string tried;
  for (const char* c : candidates) {
    lib = dlopen(c, RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      out.api.path = c;
      break;
    }
    const char* e = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + (e ? e : c);
  }
  if (!lib) {
    out.error = "cuBLASLt could not be loaded (" + tried + ")";
    return out;
  }
  std::string missing;
  CublasLtApi& a = out.api;
  resolve(lib, a.create, "cublasLtCreate", missing);
  resolve(lib, a.destroy, "cublasLtDestroy", missing);
  resolve(lib, a.getVersion, "cublasLtGetVersion", missing);
  resolve(lib, a.matmulDescCreate, "cublasLtMatmulDescCreate", missing);
  resolve(lib, a.matmulDescDestroy, "cublasLtMatmulDescDestroy", missing);
  resolve(lib, a.matmulDescSetAttribute, "cublasLtMatmulDescSetAttribute", missing);
  resolve(lib, a.layoutCreate, "cublasLtMatrixLayoutCreate", missing);
  resolve(lib, a.layoutDestroy, "cublasLtMatrixLayoutDestroy", missing);
  resolve(lib, a.preferenceCreate, "cublasLtMatmulPreferenceCreate", missing);
  resolve(lib, a.preferenceDestroy, "cublasLtMatmulPreferenceDestroy", missing);
  resolve(lib, a.preferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute", missing);
  resolve(lib, a.algoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic", missing);
  resolve(lib, a.matmul, "cublasLtMatmul", missing);
  if (!missing.empty())
    out.error = std::string("cuBLASLt at ") + a.path + " lacks " + missing;
  return out;
}

}  // namespace

const CublasLtApi& cublasLt() {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.error.empty()) throw Error(loaded.error);
  return loaded.api;
}

}  // namespace cuda
}  // namespace mixattn
