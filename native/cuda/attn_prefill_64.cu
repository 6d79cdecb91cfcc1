// Prefill attention for head dim 64 (attn_prefill.cuh; one translation unit per head dim).
// Configurations as in attn_prefill_128.cu; `variant` < 0 takes the default.
#include "cuda/attn_prefill.cuh"

namespace mixattn {
namespace cuda {
namespace {
using V0 = PrefillCfg<64, 4, 2, 64, true, 2>;  // BM 128: 32 rows per warp, Q in registers
using V1 = PrefillCfg<64, 8, 1, 64, true, 2>;  // BM 128: 8 warps x 16 rows
using V2 = PrefillCfg<64, 4, 1, 64, true, 3>;  // BM 64
}  // namespace
void attentionPrefill64(const Ctx& c, const AttnArgs& a, int variant) {
  switch (variant) {
    case 1: return launchPrefill<V1>(c, a);
    case 2: return launchPrefill<V2>(c, a);
    default: return launchPrefill<V0>(c, a);
  }
}
}  // namespace cuda
}  // namespace mixattn
