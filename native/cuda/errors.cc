// CUDA and device-recorded errors as mixattn::Error, worded like the CPU backend's.
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/device_error.h"
#include "cuda/ops.h"

namespace mixattn {
namespace cuda {

namespace {
const char* opName(int op) {
  switch (op) {
    case kOpEmbedding: return "embedding";
    case kOpAppendKv: return "appendKv";
    case kOpAttention: return "attention";
    case kOpGatherRows: return "gatherRows";
    case kOpAttentionLowRankKeys: return "attentionLowRankKeys";
    default: return "kernel";
  }
}
}  // namespace

std::string describe(const DeviceError& e) {
  using std::to_string;
  const std::string op = opName(e.op);
  const std::string at = op + ": sequence " + to_string(e.a) + " position " + to_string(e.b) + ": ";
  switch (e.code) {
    case kErrNone: return "";
    case kErrToken:
      return op + ": token id " + to_string(e.b) + " at index " + to_string(e.a) +
             " is outside [0, " + to_string(e.c) + ")";
    case kErrPageMissing: return at + "page id " + to_string(e.c) + " is missing";
    case kErrPageRange:
      return at + "page id " + to_string(e.c) + " is out of range (numPages " + to_string(e.d) + ")";
    case kErrBeyondTable: return at + "beyond the block table";
    case kErrSeqRange: return at + "sequence out of range";
    case kErrNegativePos: return at + "negative position";
    case kErrGatherIndex:
      return op + ": negative row index " + to_string(e.b) + " at position " + to_string(e.a);
    default: return op + ": device error " + to_string(e.code);
  }
}

void check(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear it where it is not sticky, so the next op starts clean
  throw Error(std::string(op) + ": CUDA error: " + cudaGetErrorName(e) + " (" +
              cudaGetErrorString(e) + ")");
}

void checkLaunch(const char* op) { check(cudaGetLastError(), op); }

bool skipOp(const char* op) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    const char* e = std::getenv("MIXATTN_CUDA_SKIP_OPS");
    std::string s = e ? e : "";
    for (size_t at = 0; at < s.size();) {
      size_t end = s.find(',', at);
      if (end == std::string::npos) end = s.size();
      if (end > at) v.push_back(s.substr(at, end - at));
      at = end + 1;
    }
    return v;
  }();
  for (const std::string& n : names)
    if (std::string(op).compare(0, n.size(), n) == 0) return true;
  return false;
}

}  // namespace cuda
}  // namespace mixattn
