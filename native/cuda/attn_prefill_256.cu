// Prefill attention for head dim 256 (attn_prefill.cuh; one translation unit per head dim).
// Configurations as in attn_prefill_128.cu; `variant` < 0 takes the default.
#include "cuda/attn_prefill.cuh"

namespace mixattn {
namespace cuda {
namespace {
using V0 = PrefillCfg<256, 4, 1, 32, false, 2>;  // BM 64, 32-key tiles (96 KB smem)
using V1 = PrefillCfg<256, 4, 1, 64, false, 1>;  // BM 64, 64-key tiles (160 KB smem)
using V2 = PrefillCfg<256, 8, 1, 32, false, 1>;  // BM 128, 32-key tiles
}  // namespace
void attentionPrefill256(const Ctx& c, const AttnArgs& a, int variant) {
  switch (variant) {
    case 1: return launchPrefill<V1>(c, a);
    case 2: return launchPrefill<V2>(c, a);
    default: return launchPrefill<V0>(c, a);
  }
}
}  // namespace cuda
}  // namespace mixattn
