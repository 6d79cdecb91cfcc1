// Row-wise and elementwise ops: embedding, RMSNorm (plain and fused with the residual add),
// add, row gather and the gated MLP activations. Each is split over rows (or flat chunks)
// with a grain large enough that tiny decode-sized calls run inline on the calling thread.
#include <algorithm>
#include <cmath>
#include <string>

#include "cpu/cpu_ops.h"
#include "cpu/simd.h"

namespace mixattn {
namespace cpu {

namespace {

// Rows per chunk so that one chunk touches at least ~16K elements.
size_t rowGrain(size_t rowElems) {
  return std::max<size_t>(1, 16384 / std::max<size_t>(1, rowElems));
}
constexpr size_t kFlatGrain = 16384;

// y = x / sqrt(mean(x²) + eps) * w for one row; out may equal x.
void normRow(float* out, const float* x, const void* w, DType wType, int dim, float eps) {
  // fp32 partial sums in 8 lanes (each sums dim/8 squares), combined in double.
  F32x4 a0 = zero4(), a1 = zero4();
  int i = 0;
  for (; i + 8 <= dim; i += 8) {
    F32x4 v0 = load4(x + i), v1 = load4(x + i + 4);
    a0 += v0 * v0;
    a1 += v1 * v1;
  }
  double ss = 0;
  for (; i < dim; ++i) ss += double(x[i]) * x[i];
  for (int j = 0; j < 4; ++j) ss += double(a0[j]) + double(a1[j]);
  float inv = float(1.0 / std::sqrt(ss / dim + double(eps)));
  if (wType == DType::F32) {
    const float* wf = static_cast<const float*>(w);
    for (int k = 0; k < dim; ++k) out[k] = x[k] * inv * wf[k];
  } else {
    const uint16_t* wb = static_cast<const uint16_t*>(w);
    for (int k = 0; k < dim; ++k) out[k] = x[k] * inv * bf16ToFloat(wb[k]);
  }
}

}  // namespace

void embedding(ThreadPool& pool, float* out, const int32_t* tokens, int n, const void* table,
               DType tableType, int vocab, int dim, float scale) {
  // Validate everything first so a bad id leaves `out` untouched.
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab)
      throw Error("embedding: token id " + std::to_string(tokens[i]) + " at index " +
                  std::to_string(i) + " is outside [0, " + std::to_string(vocab) + ")");
  }
  size_t es = dtypeSize(tableType);
  pool.parallelFor(size_t(n), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float* o = out + i * size_t(dim);
      const char* row = static_cast<const char*>(table) + size_t(tokens[i]) * dim * es;
      toFloat(o, row, tableType, size_t(dim));
      if (scale != 1.f)
        for (int k = 0; k < dim; ++k) o[k] *= scale;
    }
  }, rowGrain(size_t(dim)));
}

void rmsnorm(ThreadPool& pool, float* out, const float* in, const void* w, DType wType,
             int rows, int dim, float eps) {
  pool.parallelFor(size_t(rows), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r)
      normRow(out + r * size_t(dim), in + r * size_t(dim), w, wType, dim, eps);
  }, rowGrain(size_t(dim)));
}

void addRmsnorm(ThreadPool& pool, float* out, float* residual, const float* delta,
                const void* w, DType wType, int rows, int dim, float eps) {
  pool.parallelFor(size_t(rows), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      // The whole residual row is updated before out is written, so out may alias delta.
      float* res = residual + r * size_t(dim);
      const float* d = delta + r * size_t(dim);
      for (int k = 0; k < dim; ++k) res[k] += d[k];
      normRow(out + r * size_t(dim), res, w, wType, dim, eps);
    }
  }, rowGrain(size_t(dim)));
}

void add(ThreadPool& pool, float* inout, const float* in, size_t n) {
  pool.parallelFor(n, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) inout[i] += in[i];
  }, kFlatGrain);
}

void gatherRows(ThreadPool& pool, float* out, const float* in, const int32_t* index, int rows,
                int dim) {
  for (int i = 0; i < rows; ++i) {
    if (index[i] < 0)
      throw Error("gatherRows: negative row index " + std::to_string(index[i]) +
                  " at position " + std::to_string(i));
  }
  pool.parallelFor(size_t(rows), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      std::copy_n(in + size_t(index[i]) * dim, size_t(dim), out + i * size_t(dim));
  }, rowGrain(size_t(dim)));
}

void gatedActivation(ThreadPool& pool, float* out, const float* gate, const float* up, int T,
                     int I, Activation act) {
  size_t n = size_t(T) * size_t(I);
  if (act == Activation::SiLU) {
    pool.parallelFor(n, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        float g = gate[i];
        out[i] = g / (1.f + std::exp(-g)) * up[i];
      }
    }, kFlatGrain / 4);
  } else if (act == Activation::GeluTanh) {
    const float c = 0.7978845608028654f;  // sqrt(2 / pi)
    pool.parallelFor(n, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        float g = gate[i];
        out[i] = 0.5f * g * (1.f + std::tanh(c * (g + 0.044715f * g * g * g))) * up[i];
      }
    }, kFlatGrain / 4);
  } else {
    throw Error("gatedActivation: unknown activation " + std::to_string(int(act)));
  }
}

}  // namespace cpu
}  // namespace mixattn
