// A CUPTI activity tracer loaded into any CUDA process through CUDA_INJECTION64_PATH: every
// kernel's start and end on the GPU clock, graph kernels included, written to
// $MIXATTN_TRACE_OUT (one line per kernel) when the process exits; with MIXATTN_TRACE_API=1
// also every CUDA runtime call (host clock, "api:<name>").
//
// Why: ncu times each kernel alone, serialised and without the overlap programmatic dependent
// launch gives a captured step, and the GPU machine has no nsys. This shows the step as it runs.
// Built on the GPU machine by bench/profile-step-on-gpu.sh (CUPTI comes with the toolkit there);
// KERNEL_RECORD names the newest CUpti_ActivityKernelN the header has.
#include <cupti.h>
#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#ifndef RUNTIME_RECORD
#define RUNTIME_RECORD CUpti_ActivityAPI
#endif
#ifndef KERNEL_RECORD
#define KERNEL_RECORD CUpti_ActivityKernel9
#endif

namespace {

FILE* out = nullptr;
std::mutex outMutex;
constexpr size_t kBufferBytes = size_t(16) << 20;

void CUPTIAPI bufferRequested(uint8_t** buffer, size_t* size, size_t* maxRecords) {
  *buffer = static_cast<uint8_t*>(aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *maxRecords = 0;
}

std::string demangled(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : name;
  free(d);
  for (char& ch : s)
    if (ch == '\t' || ch == '\n') ch = ' ';
  return s;
}

void CUPTIAPI bufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* rec = nullptr;
  std::lock_guard<std::mutex> lock(outMutex);
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind == CUPTI_ACTIVITY_KIND_RUNTIME) {  // host side: which call, when
      const auto* r = reinterpret_cast<const RUNTIME_RECORD*>(rec);
      const char* name = nullptr;
      cuptiGetCallbackName(CUPTI_CB_DOMAIN_RUNTIME_API, r->cbid, &name);
      if (out)
        fprintf(out, "%llu\t%llu\t%u\t0\t-\t0\t0\tapi:%s\n", (unsigned long long)r->start,
                (unsigned long long)r->end, r->correlationId, name ? name : "?");
      continue;
    }
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL)
      continue;
    const auto* k = reinterpret_cast<const KERNEL_RECORD*>(rec);
    if (out)
      fprintf(out, "%llu\t%llu\t%u\t%u\t%d,%d,%d\t%d\t%d\t%s\n", (unsigned long long)k->start,
              (unsigned long long)k->end, k->correlationId, k->graphId, k->gridX, k->gridY,
              k->gridZ, k->blockX, int(k->registersPerThread), demangled(k->name).c_str());
  }
  free(buffer);
}

bool traceApi() {
  const char* e = std::getenv("MIXATTN_TRACE_API");
  return e && *e && std::strcmp(e, "0") != 0;
}

void finish() {
  cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard<std::mutex> lock(outMutex);
  if (out) fclose(out), out = nullptr;
}

}  // namespace

extern "C" int InitializeInjection(void) {
  const char* path = std::getenv("MIXATTN_TRACE_OUT");
  out = fopen(path ? path : "kernel-trace.tsv", "w");
  if (!out) return 0;
  fprintf(out, "start\tend\tcorrelation\tgraph\tgrid\tblock\tregs\tname\n");
  if (cuptiActivityRegisterCallbacks(bufferRequested, bufferCompleted) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS ||
      (traceApi() && cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME) != CUPTI_SUCCESS)) {
    fprintf(stderr, "kernel_trace: CUPTI would not start\n");
    return 0;
  }
  atexit(finish);
  return 1;
}
