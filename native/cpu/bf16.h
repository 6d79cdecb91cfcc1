// bfloat16 <-> float. bf16 is the top half of an IEEE float, so widening is exact (a shift)
// and narrowing rounds to nearest even, keeping NaNs NaN (a plain truncation could turn a
// NaN whose payload sits in the low bits into infinity).
#pragma once

#include <cstdint>
#include <cstring>

namespace mixattn {
namespace cpu {

inline float bf16ToFloat(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

}  // namespace cpu
}  // namespace mixattn
