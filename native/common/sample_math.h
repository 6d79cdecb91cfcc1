// The arithmetic of Backend::sample's rule, shared by the CPU twin (native/cpu/ops_sampling.cc)
// and the CUDA kernel (native/cuda/ops_sampling.cu) so that both compute bit-identical numbers;
// lib/sampling/weights.ts is the same code in TypeScript. Every step is one IEEE fp32 operation
// rounded to nearest (on the device the __f*_rn intrinsics, which nvcc never fuses into FMAs;
// on the host the CPU twin is compiled with -ffp-contract=off) or an exact one (floor, scaling
// by a power of two). Nothing goes through a library exp, whose last bit differs by platform.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define MIXATTN_HD __host__ __device__ __forceinline__
#else
#define MIXATTN_HD inline
#endif

namespace mixattn {
namespace sampling {

MIXATTN_HD float mulRn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MIXATTN_HD float addRn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MIXATTN_HD float subRn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MIXATTN_HD float divRn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
MIXATTN_HD float floorF(float x) {
#ifdef __CUDA_ARCH__
  return floorf(x);
#else
  return __builtin_floorf(x);
#endif
}
MIXATTN_HD float bitsToFloat(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
MIXATTN_HD uint32_t floatToBits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

constexpr float kLog2e = 1.44269502f;
constexpr float kLn2Hi = 0.693359375f;  // 9 bits: k * kLn2Hi is exact for |k| < 2^15
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kWeightScale = 2147483648.f;  // 2^31: the top token's integer weight

// 1 / T in fp32 (T > 0; infinity when T is subnormal).
MIXATTN_HD float invTemperature(float t) { return divRn(1.f, t); }

// s = (y - m) * invT, exactly 0 at the maximum (also when invT is infinite).
MIXATTN_HD float scaledLogit(float y, float m, float invT) {
  const float d = subRn(y, m);
  return d == 0.f ? 0.f : mulRn(d, invT);
}

// exp(s) for s <= 0 within 2 ulp (Cody-Waite reduction, degree-7 Taylor): 0 below -87 and for
// -inf or NaN, exactly 1 at 0.
MIXATTN_HD float expWeight(float s) {
  if (!(s >= -87.f)) return 0.f;
  const float k = floorF(addRn(mulRn(s, kLog2e), 0.5f));  // in [-126, 0]
  float r = subRn(s, mulRn(k, kLn2Hi));
  r = subRn(r, mulRn(k, kLn2Lo));
  float p = 1.f / 5040.f;
  p = addRn(mulRn(p, r), 1.f / 720.f);
  p = addRn(mulRn(p, r), 1.f / 120.f);
  p = addRn(mulRn(p, r), 1.f / 24.f);
  p = addRn(mulRn(p, r), 1.f / 6.f);
  p = addRn(mulRn(p, r), 0.5f);
  p = addRn(mulRn(p, r), 1.f);
  p = addRn(mulRn(p, r), 1.f);
  // p * 2^k: exact, but for k = -126 where a result below 2^-126 rounds to a subnormal.
  return mulRn(p, bitsToFloat(uint32_t(int(k) + 127) << 23));
}

// floor(w * 2^31) for w in [0, 1].
MIXATTN_HD uint32_t integerWeight(float w) { return uint32_t(mulRn(w, kWeightScale)); }

// The penalised logit of a listed token generated `count` times (step 0 of the rule).
MIXATTN_HD float penalisedLogit(float x, int count, float rep, float presence, float frequency) {
  float v = x;
  if (rep != 1.f) v = v < 0.f ? mulRn(v, rep) : divRn(v, rep);
  if (count > 0 && (presence != 0.f || frequency != 0.f))
    v = subRn(v, addRn(mulRn(float(count), frequency), presence));
  return v;
}

// An unsigned key with the order of the (non-NaN) floats; -0 and +0 share one.
MIXATTN_HD uint32_t orderedKey(float y) {
  const uint32_t u = floatToBits(addRn(y, 0.f));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
MIXATTN_HD float keyToFloat(uint32_t k) {
  return bitsToFloat((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

}  // namespace sampling
}  // namespace mixattn
