// The RoPE math of the CPU backend (HF rotate_half layout), shared by the rope op and the
// low-rank key expansion of attention (keys rotated at their own positions inside the
// kernel), so both rotate by the same angles: computed in double, rounded to fp32.
#pragma once

#include <cmath>

namespace mixattn {
namespace cpu {

// cos/sin of pos·inv[i] for i < half.
inline void ropeAngles(double pos, const double* inv, int half, float* __restrict cosv,
                       float* __restrict sinv) {
  for (int i = 0; i < half; ++i) {
    double a = pos * inv[i];
    cosv[i] = float(std::cos(a));
    sinv[i] = float(std::sin(a));
  }
}

// Rotates pair (x[i], x[i + half]) by the angle whose cos/sin are c[i], s[i].
inline void rotateHalf(float* __restrict x, int half, const float* __restrict c,
                       const float* __restrict s) {
  float* __restrict hi = x + half;
  for (int i = 0; i < half; ++i) {
    float x0 = x[i], x1 = hi[i];
    x[i] = x0 * c[i] - x1 * s[i];
    hi[i] = x1 * c[i] + x0 * s[i];
  }
}

// ropeAngles for the n consecutive positions pos0, pos0 + 1, ... as [n][half] rows: one
// sincos per frequency at pos0, then rotations by inv[i] in double (error ~n·1e-16, far below
// the fp32 rounding of the results), so a block of keys costs 2·half sincos instead of n·half.
inline void ropeAnglesRun(int pos0, int n, const double* inv, int half, float* __restrict cosv,
                          float* __restrict sinv) {
  for (int i = 0; i < half; ++i) {
    double c = std::cos(double(pos0) * inv[i]), s = std::sin(double(pos0) * inv[i]);
    const double dc = std::cos(inv[i]), ds = std::sin(inv[i]);
    for (int r = 0; r < n; ++r) {
      cosv[size_t(r) * half + i] = float(c);
      sinv[size_t(r) * half + i] = float(s);
      const double nc = c * dc - s * ds;
      s = s * dc + c * ds;
      c = nc;
    }
  }
}

}  // namespace cpu
}  // namespace mixattn
