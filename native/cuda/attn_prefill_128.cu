// Prefill attention for head dim 128 (attn_prefill.cuh; one translation unit per head dim).
// Configurations (NW warps, MT m-tiles per warp, BN keys per tile, Q in registers, min blocks
// per SM); `variant` < 0 takes the default, the others are kept for tests and benchmarks
// (bench/attention.py times them all; bench/results says why the default won).
#include "cuda/attn_prefill.cuh"

namespace mixattn {
namespace cuda {
namespace {
using V0 = PrefillCfg<128, 4, 2, 64, false, 2>;  // BM 128: FA2's layout (32 rows per warp)
using V1 = PrefillCfg<128, 8, 1, 64, true, 1>;   // BM 128: 8 warps x 16 rows, Q in registers
using V2 = PrefillCfg<128, 4, 1, 64, true, 2>;   // BM 64: 4 warps x 16 rows, Q in registers
using V3 = PrefillCfg<128, 4, 1, 64, false, 2>;  // BM 64: 4 warps x 16 rows, Q from smem
using V4 = PrefillCfg<128, 4, 2, 32, false, 2>;  // BM 128: 32 rows per warp, 32-key tiles
// BM 64, one warpgroup: wgmma on sm_90a builds (else V2's mma.sync code on the wgmma layout).
using V5 = PrefillCfg<128, 4, 1, 64, true, 2, true>;
using V6 = PrefillCfg<128, 4, 1, 64, true, 3, true>;  // V5 at 3 blocks per SM (168 registers)
// wgmma, software-pipelined (softmax(n) overlaps P·V(n-1)); stages = tiles of prefetch + 2:
using V7 = PrefillCfg<128, 8, 1, 64, true, 1, true, true, 4>;   // BM 128 (2 warpgroups), BN 64
using V8 = PrefillCfg<128, 8, 1, 128, true, 1, true, true>;     // BM 128 (2 warpgroups), BN 128
using V9 = PrefillCfg<128, 4, 1, 64, true, 2, true, true>;      // BM 64 (1 warpgroup), BN 64
using V10 = PrefillCfg<128, 8, 1, 64, true, 1, true, true, 3>;  // V7 with one tile of prefetch
// Q read by the S wgmmas from shared memory (32 registers fewer):
using V11 = PrefillCfg<128, 8, 1, 128, false, 1, true, true, 3>;  // BN 128, 3 stages (225 KB)
using V12 = PrefillCfg<128, 8, 1, 64, false, 1, true, true, 4>;   // BN 64, 4 stages

// Whether the binary the driver picked for this GPU has the wgmma path (an sm_90a build on a
// Hopper GPU): asked once, of the device itself.
__global__ void wgmmaProbeKernel(int* flag) { *flag = MIXATTN_HAS_WGMMA; }
bool wgmmaCompiled() {
  static const bool compiled = [] {
    int* d = nullptr;
    int h = 0;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) return false;
    wgmmaProbeKernel<<<1, 1>>>(d);
    const bool ok = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
    cudaFree(d);
    cudaGetLastError();  // a failed probe only means no wgmma
    return ok && h == 1;
  }();
  return compiled;
}
}  // namespace
void attentionPrefill128(const Ctx& c, const AttnArgs& a, int variant) {
  // Default: the fastest measured (bench/results): wgmma where compiled, else mma.sync V1.
  if (variant < 0) variant = wgmmaCompiled() ? 6 : 1;
  switch (variant) {
    case 1: return launchPrefill<V1>(c, a);
    case 2: return launchPrefill<V2>(c, a);
    case 3: return launchPrefill<V3>(c, a);
    case 4: return launchPrefill<V4>(c, a);
    case 5: return launchPrefill<V5>(c, a);
    case 6: return launchPrefill<V6>(c, a);
    case 7: return launchPrefill<V7>(c, a);
    case 8: return launchPrefill<V8>(c, a);
    case 9: return launchPrefill<V9>(c, a);
    case 10: return launchPrefill<V10>(c, a);
    case 11: return launchPrefill<V11>(c, a);
    case 12: return launchPrefill<V12>(c, a);
    case 0: return launchPrefill<V0>(c, a);
    default: return launchPrefill<V1>(c, a);
  }
}
}  // namespace cuda
}  // namespace mixattn
