// What the CUDA side of the build can report before its backend exists: whether it was
// compiled in, and how many devices the driver sees (or why none).
#pragma once

#include <string>

namespace mixattn {

struct CudaProbe {
  bool built = false;
  int deviceCount = 0;
  std::string error;  // empty when the runtime answered
  std::string deviceName;
};

CudaProbe probeCuda();

}  // namespace mixattn
