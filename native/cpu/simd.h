// A 4-wide fp32 vector for the hot loops (matmul tiles, gemv). GCC and Clang's vector
// extensions map it onto one SSE register at the default x86-64 target (and NEON on arm64),
// no -march flags needed; other compilers get a plain array the optimiser can still
// vectorise. Written out because GCC, left alone, vectorises the matmul tile along K with
// shuffles and keeps the accumulators on the stack.
#pragma once

#include <cstdint>
#include <cstring>

namespace mixattn {
namespace cpu {

#if defined(__GNUC__) || defined(__clang__)

typedef float F32x4 __attribute__((vector_size(16)));
typedef uint16_t U16x4 __attribute__((vector_size(8)));
typedef uint32_t U32x4 __attribute__((vector_size(16)));

inline F32x4 zero4() { return F32x4{0, 0, 0, 0}; }
inline F32x4 splat4(float x) { return F32x4{x, x, x, x}; }
inline F32x4 load4(const float* p) {
  F32x4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// Widens 4 bf16 values: zero-extend to 32 bits, shift into the high half.
inline F32x4 load4(const uint16_t* p) {
  U16x4 h;
  std::memcpy(&h, p, sizeof h);
  U32x4 w = __builtin_convertvector(h, U32x4) << 16;
  F32x4 v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}
inline void store4(float* p, F32x4 v) { std::memcpy(p, &v, sizeof v); }

#else

struct F32x4 {
  float v[4];
  float operator[](int i) const { return v[i]; }
};
inline F32x4 zero4() { return F32x4{{0, 0, 0, 0}}; }
inline F32x4 splat4(float x) { return F32x4{{x, x, x, x}}; }
inline F32x4 operator+(F32x4 a, F32x4 b) {
  for (int i = 0; i < 4; ++i) a.v[i] += b.v[i];
  return a;
}
inline F32x4 operator*(F32x4 a, F32x4 b) {
  for (int i = 0; i < 4; ++i) a.v[i] *= b.v[i];
  return a;
}
inline F32x4& operator+=(F32x4& a, F32x4 b) { return a = a + b; }
inline F32x4 load4(const float* p) {
  F32x4 r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline F32x4 load4(const uint16_t* p) {
  F32x4 r;
  for (int i = 0; i < 4; ++i) {
    uint32_t u = uint32_t(p[i]) << 16;
    std::memcpy(&r.v[i], &u, 4);
  }
  return r;
}
inline void store4(float* p, F32x4 v) { std::memcpy(p, v.v, sizeof v.v); }

#endif

// Sum of the 4 lanes, pairwise.
inline float hsum4(F32x4 v) { return (v[0] + v[2]) + (v[1] + v[3]); }

}  // namespace cpu
}  // namespace mixattn
