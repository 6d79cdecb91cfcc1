// A 4-wide fp32 vector for the hot loops (matmul tiles, gemv). GCC and Clang's vector
// extensions map it onto one SSE register at the default x86-64 target (and NEON on arm64),
// no -march flags needed; other compilers get a plain array the optimiser can still
// vectorise. Written out because GCC, left alone, vectorises the matmul tile along K with
// shuffles and keeps the accumulators on the stack. Defining MIXATTN_NO_VECTOR_EXT forces
// the portable branch (to test it).
#pragma once

#include <cstdint>
#include <cstring>

namespace mixattn {
namespace cpu {

#if (defined(__GNUC__) || defined(__clang__)) && !defined(MIXATTN_NO_VECTOR_EXT)

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

// Widens 8 bf16 values with one load and two bit operations, split by parity:
// even = elements 0,2,4,6 and odd = 1,3,5,7 (each 32-bit lane holds an even element in its
// low half and the next odd one in its high half; little-endian). Pair with x vectors laid
// out the same way (splitPairs) when only a dot product is wanted.
inline void loadBf16Split(const uint16_t* p, F32x4& even, F32x4& odd) {
  U32x4 w;
  std::memcpy(&w, p, sizeof w);
  U32x4 e = w << 16, o = w & 0xffff0000u;
  std::memcpy(&even, &e, sizeof even);
  std::memcpy(&odd, &o, sizeof odd);
}

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
inline void loadBf16Split(const uint16_t* p, F32x4& even, F32x4& odd) {
  for (int i = 0; i < 4; ++i) {
    uint32_t e = uint32_t(p[2 * i]) << 16, o = uint32_t(p[2 * i + 1]) << 16;
    std::memcpy(&even.v[i], &e, 4);
    std::memcpy(&odd.v[i], &o, 4);
  }
}

#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "loadBf16Split assumes a little-endian target"
#endif

// Reorders each full block of 8 floats as (0,2,4,6, 1,3,5,7) to match loadBf16Split;
// a tail shorter than 8 is copied as is.
inline void splitPairs(float* __restrict dst, const float* __restrict src, int n) {
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int i = 0; i < 4; ++i) {
      dst[k + i] = src[k + 2 * i];
      dst[k + 4 + i] = src[k + 2 * i + 1];
    }
  for (; k < n; ++k) dst[k] = src[k];
}

// Sum of the 4 lanes, pairwise.
inline float hsum4(F32x4 v) { return (v[0] + v[2]) + (v[1] + v[3]); }

// Inverse of splitPairs, times `scale`.
inline void unsplitPairs(float* __restrict dst, const float* __restrict src, int n, float scale) {
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int i = 0; i < 4; ++i) {
      dst[k + 2 * i] = src[k + i] * scale;
      dst[k + 2 * i + 1] = src[k + 4 + i] * scale;
    }
  for (; k < n; ++k) dst[k] = src[k] * scale;
}

// a · b in fp32, two 4-wide accumulators.
inline float dotF32(const float* __restrict a, const float* __restrict b, int n) {
  F32x4 s0 = zero4(), s1 = zero4();
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    s0 += load4(a + k) * load4(b + k);
    s1 += load4(a + k + 4) * load4(b + k + 4);
  }
  float s = hsum4(s0 + s1);
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

// xs · w for bf16 w, with xs in splitPairs order.
inline float dotBf16Split(const float* __restrict xs, const uint16_t* __restrict w, int n) {
  F32x4 s0 = zero4(), s1 = zero4();
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    F32x4 e, o;
    loadBf16Split(w + k, e, o);
    s0 += load4(xs + k) * e;
    s1 += load4(xs + k + 4) * o;
  }
  float s = hsum4(s0 + s1);
  for (; k < n; ++k) {
    uint32_t u = uint32_t(w[k]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += xs[k] * f;
  }
  return s;
}

// y += a·v (fp32).
inline void axpyF32(float* __restrict y, float a, const float* __restrict v, int n) {
  F32x4 av = splat4(a);
  int k = 0;
  for (; k + 4 <= n; k += 4) store4(y + k, load4(y + k) + av * load4(v + k));
  for (; k < n; ++k) y[k] += a * v[k];
}

// ys += a·v for bf16 v, with ys kept in splitPairs order.
inline void axpyBf16Split(float* __restrict ys, float a, const uint16_t* __restrict v, int n) {
  F32x4 av = splat4(a);
  int k = 0;
  for (; k + 8 <= n; k += 8) {
    F32x4 e, o;
    loadBf16Split(v + k, e, o);
    store4(ys + k, load4(ys + k) + av * e);
    store4(ys + k + 4, load4(ys + k + 4) + av * o);
  }
  for (; k < n; ++k) {
    uint32_t u = uint32_t(v[k]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    ys[k] += a * f;
  }
}

}  // namespace cpu
}  // namespace mixattn
