// Prefill attention for head dim 256 (attn_prefill.cuh; one translation unit per head dim).
#include "cuda/attn_prefill.cuh"

namespace mixattn {
namespace cuda {
void attentionPrefill256(const Ctx& c, const AttnArgs& a) { launchPrefill<256>(c, a); }
}  // namespace cuda
}  // namespace mixattn
