#include "common/rope_freq.h"

#include <cmath>
#include <string>

namespace mixattn {

std::vector<double> ropeInverseFrequencies(const RopeParams& p, int headDim) {
  if (headDim <= 0 || headDim % 2 != 0)
    throw Error("rope: head dim " + std::to_string(headDim) + " must be positive and even");
  if (!(p.theta > 0) || ((p.scaling != RopeScaling::Default) && !(p.factor > 0)))
    throw Error("rope: theta and factor must be positive");
  const double kPi = 3.14159265358979323846;
  const int half = headDim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) inv[i] = std::pow(double(p.theta), -2.0 * i / headDim);
  switch (p.scaling) {
    case RopeScaling::Default:
      break;
    case RopeScaling::Linear:
      for (double& f : inv) f /= p.factor;
      break;
    case RopeScaling::Llama3: {
      const double origMax = p.originalMaxPosition;
      const double lowWavelen = origMax / p.lowFreqFactor;
      const double highWavelen = origMax / p.highFreqFactor;
      for (double& f : inv) {
        const double wavelen = 2 * kPi / f;
        if (wavelen > lowWavelen) {
          f = f / p.factor;
        } else if (wavelen >= highWavelen && p.highFreqFactor != p.lowFreqFactor) {
          const double smooth =
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

}  // namespace mixattn
