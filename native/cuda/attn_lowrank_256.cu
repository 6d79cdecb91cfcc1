// Attention over low-rank keys (and plain keys with V narrower than K) for head dim 256
// (attn_lowrank.cuh; one translation unit per head dim).
#include "cuda/attn_lowrank.cuh"

namespace mixattn {
namespace cuda {
int lowRankBlocksPerSM256(const AttnArgs& a, const LowRankPlan& p) { return lowRankBlocksPerSMFor<256>(a, p); }
void launchLowRank256(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p) {
  launchLowRankFor<256>(c, a, lr, p);
}
}  // namespace cuda
}  // namespace mixattn
