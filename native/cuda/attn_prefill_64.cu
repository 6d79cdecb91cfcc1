// Prefill attention for head dim 64 (attn_prefill.cuh; one translation unit per head dim).
#include "cuda/attn_prefill.cuh"

namespace mixattn {
namespace cuda {
void attentionPrefill64(const Ctx& c, const AttnArgs& a) { launchPrefill<64>(c, a); }
}  // namespace cuda
}  // namespace mixattn
