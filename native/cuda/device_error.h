// Errors found by kernels in device data (a token id outside the vocabulary, a missing or
// out-of-range page id, a negative row index). A kernel that meets one records the first in
// a DeviceError in device memory (atomicCAS on `code`), skips the bad element and goes on;
// nothing is read or written out of bounds. The backend copies the record back at the next
// download/synchronize and throws it as a mixattn::Error with the CPU backend's wording.
#pragma once

#include <string>

namespace mixattn {
namespace cuda {

enum ErrCode : int {
  kErrNone = 0,
  kErrToken = 1,         // a = index, b = token id, c = vocab
  kErrPageMissing = 2,   // a = seq, b = pos, c = page id
  kErrPageRange = 3,     // a = seq, b = pos, c = page id, d = numPages
  kErrBeyondTable = 4,   // a = seq, b = pos
  kErrSeqRange = 5,      // a = seq, b = pos
  kErrNegativePos = 6,   // a = seq, b = pos
  kErrGatherIndex = 7,   // a = position in index, b = row index
};

enum ErrOp : int {
  kOpEmbedding = 0,
  kOpAppendKv = 1,
  kOpAttention = 2,
  kOpGatherRows = 3,
  kOpAttentionLowRankKeys = 4,
};

struct DeviceError {
  int code;
  int op;
  int a, b, c, d;
};

// The message for a recorded error (empty when code == kErrNone).
std::string describe(const DeviceError& e);

}  // namespace cuda
}  // namespace mixattn
