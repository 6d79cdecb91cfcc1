#include "common/paged_kv_check.h"

#include <cmath>
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

void checkAttentionScalars(float scale, float softcap, const char* op) {
  if (!(scale > 0.f) || !std::isfinite(scale))
    throw Error(std::string(op) + ": scale must be positive and finite (got " +
                std::to_string(scale) + ")");
  if (!(softcap >= 0.f) || !std::isfinite(softcap))
    throw Error(std::string(op) + ": softcap must be finite and >= 0, 0 for none (got " +
                std::to_string(softcap) + ")");
}

}  // namespace mixattn
