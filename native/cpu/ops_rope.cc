// Rotary position embedding, HF rotate_half layout: dimension i pairs with i + headDim/2.
// Frequencies and angles are computed in double: at positions ~1e5 an fp32 angle is already
// off by ~1e-2 rad. cos/sin are computed once per row and shared by all its heads, which
// keeps the cost at T·headDim/2 sincos per call (small next to the matmuls around it).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/rope_freq.h"
#include "cpu/cpu_ops.h"
#include "cpu/rope_row.h"

namespace mixattn {
namespace cpu {

void rope(ThreadPool& pool, float* x, const int32_t* positions, int T, int heads, int headDim,
          const RopeParams& p) {
  if (headDim <= 0 || headDim % 2 != 0)
    throw Error("rope: head dim " + std::to_string(headDim) + " must be positive and even");
  if (!(p.theta > 0) || ((p.scaling != RopeScaling::Default) && !(p.factor > 0)))
    throw Error("rope: theta and factor must be positive");
  const std::vector<double> inv = ropeInverseFrequencies(p, headDim);
  const int half = headDim / 2;
  size_t rowElems = size_t(heads) * headDim;
  pool.parallelFor(size_t(T), [&](size_t b, size_t e) {
    std::vector<float> cosv(static_cast<size_t>(half)), sinv(static_cast<size_t>(half));
    for (size_t t = b; t < e; ++t) {
      ropeAngles(double(positions[t]), inv.data(), half, cosv.data(), sinv.data());
      for (int h = 0; h < heads; ++h)
        rotateHalf(x + t * rowElems + size_t(h) * headDim, half, cosv.data(), sinv.data());
    }
  }, std::max<size_t>(1, 256 / size_t(heads > 0 ? heads : 1)));
}

}  // namespace cpu
}  // namespace mixattn
