// Attention over low-rank keys (and plain keys with V narrower than K) for head dim 64
// (attn_lowrank.cuh; one translation unit per head dim).
#include "cuda/attn_lowrank.cuh"

namespace mixattn {
namespace cuda {
int lowRankBlocksPerSM64(const AttnArgs& a, const LowRankPlan& p) { return lowRankBlocksPerSMFor<64>(a, p); }
void launchLowRank64(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p) {
  launchLowRankFor<64>(c, a, lr, p);
}
}  // namespace cuda
}  // namespace mixattn
