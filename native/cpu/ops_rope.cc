// Rotary position embedding, HF rotate_half layout: dimension i pairs with i + headDim/2.
// Frequencies and angles are computed in double: at positions ~1e5 an fp32 angle is already
// off by ~1e-2 rad. cos/sin are computed once per row and shared by all its heads, which
// keeps the cost at T·headDim/2 sincos per call (small next to the matmuls around it).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu/cpu_ops.h"

namespace mixattn {
namespace cpu {

namespace {

// inv_freq[i] = theta^(-2i/d), then scaled as HF's rope_init functions do.
std::vector<double> inverseFrequencies(const RopeParams& p, int headDim) {
  const double kPi = 3.14159265358979323846;
  int half = headDim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) inv[i] = std::pow(double(p.theta), -2.0 * i / headDim);
  switch (p.scaling) {
    case RopeScaling::Default:
      break;
    case RopeScaling::Linear:
      for (double& f : inv) f /= p.factor;
      break;
    case RopeScaling::Llama3: {
      // _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
      // the band in between interpolated.
      double origMax = p.originalMaxPosition;
      double lowWavelen = origMax / p.lowFreqFactor;
      double highWavelen = origMax / p.highFreqFactor;
      for (double& f : inv) {
        double wavelen = 2 * kPi / f;
        if (wavelen > lowWavelen) {
          f = f / p.factor;
        } else if (wavelen >= highWavelen && p.highFreqFactor != p.lowFreqFactor) {
          double smooth =
              (origMax / wavelen - p.lowFreqFactor) / (p.highFreqFactor - p.lowFreqFactor);
          f = (1 - smooth) * f / p.factor + smooth * f;
        }
      }
      break;
    }
    default:
      throw Error("rope: unknown scaling " + std::to_string(int(p.scaling)));
  }
  return inv;
}

}  // namespace

void rope(ThreadPool& pool, float* x, const int32_t* positions, int T, int heads, int headDim,
          const RopeParams& p) {
  if (headDim <= 0 || headDim % 2 != 0)
    throw Error("rope: head dim " + std::to_string(headDim) + " must be positive and even");
  if (!(p.theta > 0) || ((p.scaling != RopeScaling::Default) && !(p.factor > 0)))
    throw Error("rope: theta and factor must be positive");
  const std::vector<double> inv = inverseFrequencies(p, headDim);
  const int half = headDim / 2;
  size_t rowElems = size_t(heads) * headDim;
  pool.parallelFor(size_t(T), [&](size_t b, size_t e) {
    std::vector<float> cosv(static_cast<size_t>(half)), sinv(static_cast<size_t>(half));
    for (size_t t = b; t < e; ++t) {
      double pos = positions[t];
      for (int i = 0; i < half; ++i) {
        double a = pos * inv[i];
        cosv[i] = float(std::cos(a));
        sinv[i] = float(std::sin(a));
      }
      const float* __restrict c = cosv.data();
      const float* __restrict s = sinv.data();
      for (int h = 0; h < heads; ++h) {
        float* __restrict lo = x + t * rowElems + size_t(h) * headDim;
        float* __restrict hi = lo + half;
        for (int i = 0; i < half; ++i) {
          float x0 = lo[i], x1 = hi[i];
          lo[i] = x0 * c[i] - x1 * s[i];
          hi[i] = x1 * c[i] + x0 * s[i];
        }
      }
    }
  }, std::max<size_t>(1, 256 / size_t(heads > 0 ? heads : 1)));
}

}  // namespace cpu
}  // namespace mixattn
