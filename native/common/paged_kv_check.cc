#include "common/paged_kv_check.h"

#include <string>

namespace mixattn {

void checkPagedKvLayout(const PagedKv& kv, const char* op) {
  auto fail = [&](const std::string& what) { throw Error(std::string(op) + ": " + what); };
  if (!kv.arena) fail("KV arena is null");
  if (kv.numKvHeads <= 0 || kv.blockSize <= 0 || kv.kDim <= 0 || kv.vDim <= 0)
    fail("numKvHeads, blockSize, kDim and vDim must be positive");
  if (kv.pagesPerBlock <= 0 || kv.slot < 0 || kv.slot >= kv.pagesPerBlock)
    fail("slot " + std::to_string(kv.slot) + " outside [0, pagesPerBlock=" +
         std::to_string(kv.pagesPerBlock) + ")");
  const size_t need = size_t(kv.numKvHeads) * kv.blockSize * (size_t(kv.kDim) + kv.vDim) *
                      dtypeSize(kv.dtype);
  if (kv.pageBytes < need)
    fail("pageBytes " + std::to_string(kv.pageBytes) + " is smaller than the page layout (" +
         std::to_string(need) + " bytes)");
}

}  // namespace mixattn
