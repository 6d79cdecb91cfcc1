// Prefill attention for head dim 128 (attn_prefill.cuh; one translation unit per head dim).
#include "cuda/attn_prefill.cuh"

namespace mixattn {
namespace cuda {
void attentionPrefill128(const Ctx& c, const AttnArgs& a) { launchPrefill<128>(c, a); }
}  // namespace cuda
}  // namespace mixattn
