// Attention over low-rank keys (and plain keys with V narrower than K) for head dim 128
// (attn_lowrank.cuh; one translation unit per head dim).
#include "cuda/attn_lowrank.cuh"

namespace mixattn {
namespace cuda {
int lowRankBlocksPerSM128(const AttnArgs& a, const LowRankPlan& p) { return lowRankBlocksPerSMFor<128>(a, p); }
void launchLowRank128(const Ctx& c, const AttnArgs& a, const LowRankArgs& lr, const LowRankPlan& p) {
  launchLowRankFor<128>(c, a, lr, p);
}
}  // namespace cuda
}  // namespace mixattn
