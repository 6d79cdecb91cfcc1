// An 8-wide fp32 vector for the hot loops (matmul tiles, gemv). GCC and Clang's vector
// extensions turn it into two SSE registers at the default x86-64 target (one AVX register
// where the target has it) without -march flags; other compilers get a plain array the
// optimiser can still vectorise. Written out because GCC, left alone, vectorises the matmul
// tile along K with shuffles instead of along its 8 columns.
#pragma once

#include <cstdint>
#include <cstring>

namespace mixattn {
namespace cpu {

#if defined(__GNUC__) || defined(__clang__)

typedef float F32x8 __attribute__((vector_size(32)));
typedef uint16_t U16x8 __attribute__((vector_size(16)));
typedef uint32_t U32x8 __attribute__((vector_size(32)));

inline F32x8 zero8() { return F32x8{0, 0, 0, 0, 0, 0, 0, 0}; }
inline F32x8 splat8(float x) { return zero8() + x; }
inline F32x8 load8(const float* p) {
  F32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// Widens 8 bf16 values: zero-extend to 32 bits, shift into the high half.
inline F32x8 load8(const uint16_t* p) {
  U16x8 h;
  std::memcpy(&h, p, sizeof h);
  U32x8 w = __builtin_convertvector(h, U32x8) << 16;
  F32x8 v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}
inline void store8(float* p, F32x8 v) { std::memcpy(p, &v, sizeof v); }

#else

struct F32x8 {
  float v[8];
  float& operator[](int i) { return v[i]; }
  float operator[](int i) const { return v[i]; }
};
inline F32x8 zero8() { return F32x8{}; }
inline F32x8 splat8(float x) {
  F32x8 r;
  for (int i = 0; i < 8; ++i) r.v[i] = x;
  return r;
}
inline F32x8 operator+(F32x8 a, F32x8 b) {
  for (int i = 0; i < 8; ++i) a.v[i] += b.v[i];
  return a;
}
inline F32x8 operator*(F32x8 a, F32x8 b) {
  for (int i = 0; i < 8; ++i) a.v[i] *= b.v[i];
  return a;
}
inline F32x8& operator+=(F32x8& a, F32x8 b) { return a = a + b; }
inline F32x8 load8(const float* p) {
  F32x8 r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline F32x8 load8(const uint16_t* p) {
  F32x8 r;
  for (int i = 0; i < 8; ++i) {
    uint32_t u = uint32_t(p[i]) << 16;
    std::memcpy(&r.v[i], &u, 4);
  }
  return r;
}
inline void store8(float* p, F32x8 v) { std::memcpy(p, v.v, sizeof v.v); }

#endif

// Sum of the 8 lanes, pairwise.
inline float hsum8(F32x8 v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

}  // namespace cpu
}  // namespace mixattn
