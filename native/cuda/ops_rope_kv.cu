// RoPE (HF rotate_half layout) and the paged KV append.
//
// RoPE angles are computed in double, as the CPU twin does: at positions ~1e5 an fp32 angle is
// already off by ~1e-2 rad. One thread per (row, frequency) computes the angle's sincos once
// and rotates that pair in every head of the row. The inverse frequencies come from the host
// (same code path as the CPU's, cached per RopeParams by the backend). The fused append
// (ropeAppendKv) rotates the keys on their way to the page and, for an owner layer, the
// queries of the KV head's group with the same angles: one launch where there were two.
#include "cuda/common.cuh"

namespace mixattn {
namespace cuda {

namespace {

// One block per row: the row's angles (double, as the CPU twin computes them) once into
// shared memory, then every (head, pair) of the row rotated by its own thread. Rotating the
// heads one after another in each thread made the loads wait on the stores (x may alias), and
// a batch-1 decode step paid ~10 us per layer for it.
constexpr int kRopeMaxHalf = 256;

// The pair (x0, x1) of one head rotated by the angle with cosine cf and sine sf, rounded to
// bf16: the arithmetic of every RoPE here (explicit FMAs, so the fused and the separate
// kernels round the same way).
__device__ __forceinline__ void ropePair(float x0, float x1, float cf, float sf, bf16* y0, bf16* y1) {
  *y0 = fromF<bf16>(fmaf(x0, cf, -(x1 * sf)));
  *y1 = fromF<bf16>(fmaf(x1, cf, x0 * sf));
}

__global__ void ropeKernel(bf16* x, const int32_t* positions, int heads, int headDim,
                           const double* invFreq) {
  __shared__ float cosS[kRopeMaxHalf], sinS[kRopeMaxHalf];
  gridDepLaunchDependents();
  gridDepWait();
  const int t = blockIdx.x, half = headDim / 2;
  const double pos = positions[t];
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    double s, c;
    sincos(pos * invFreq[i], &s, &c);
    cosS[i] = float(c);
    sinS[i] = float(s);
  }
  __syncthreads();
  bf16* row = x + (size_t)t * heads * headDim;
  for (int e = threadIdx.x; e < heads * half; e += blockDim.x) {
    const int h = e / half, i = e - h * half;
    bf16* lo = row + (size_t)h * headDim + i;
    bf16* hi = lo + half;
    ropePair(toF(*lo), toF(*hi), cosS[i], sinS[i], lo, hi);
  }
}

// One block per (row, KV head): the row's K and V for that head go to its page; with kRope,
// K is rotated on the way (each thread rotates the pairs (i, i + kDim/2) it owns, the angle in
// double as ropeKernel computes it, rounded to bf16 as the separate rope kernel stores it),
// and with q the G query heads of the group (q[T, H·G, kDim]) are rotated in place with the
// same angles. A bad page id is recorded and the row's K and V skipped (q is still rotated).
template <typename KT, bool kRope>
__global__ void appendKvKernel(AttnArgs a, const bf16* k, const bf16* v, const double* invFreq,
                               bf16* q, int G, DeviceError* err) {
  gridDepLaunchDependents();
  // The page lookup and this thread's first RoPE angle need only the step's metadata, block
  // tables and the frequency table, which no earlier op of the step writes (launch.cuh): they
  // run before the wait, overlapping the kernel before this one.
  const int t = blockIdx.x, h = blockIdx.y, H = a.numKvHeads;
  __shared__ int page;
  const int s = a.seqOfToken[t], p = a.positions[t];
  if (threadIdx.x == 0) page = lookupPage(a, s, p, err, kOpAppendKv);
  double sn0 = 0.0, cs0 = 1.0;
  if (kRope && int(threadIdx.x) < a.kDim / 2) sincos(double(p) * invFreq[threadIdx.x], &sn0, &cs0);
  gridDepWait();
  __syncthreads();
  const bool ok = page >= 0;
  char* base = const_cast<char*>(a.arena) + (ok ? (size_t)page * a.pageBytes : 0);
  const int off = blockOffset(a, p);
  KT* kd = reinterpret_cast<KT*>(base + kOffset(a, h, off, sizeof(KT)));
  KT* vd = reinterpret_cast<KT*>(base + vOffset(a, h, off, sizeof(KT)));
  const bf16* ks = k + ((size_t)t * H + h) * a.kDim;
  const bf16* vs = v + ((size_t)t * H + h) * a.vDim;
  if constexpr (kRope) {
    const int half = a.kDim / 2;
    bf16* qg = q ? q + ((size_t)t * H + h) * G * a.kDim : nullptr;  // the group's first head
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      double sn = sn0, cs = cs0;
      if (i != int(threadIdx.x)) sincos(double(p) * invFreq[i], &sn, &cs);
      const float cf = float(cs), sf = float(sn);
      if (ok) {
        bf16 y0, y1;
        ropePair(toF(ks[i]), toF(ks[i + half]), cf, sf, &y0, &y1);
        kd[i] = fromF<KT>(toF(y0));
        kd[i + half] = fromF<KT>(toF(y1));
      }
      if (qg)
        for (int j = 0; j < G; ++j) {
          bf16* lo = qg + (size_t)j * a.kDim + i;
          ropePair(toF(lo[0]), toF(lo[half]), cf, sf, lo, lo + half);
        }
    }
  } else if (ok) {
    for (int e = threadIdx.x; e < a.kDim; e += blockDim.x) kd[e] = fromF<KT>(toF(ks[e]));
  }
  if (!ok) return;
  for (int e = threadIdx.x; e < a.vDim; e += blockDim.x) vd[e] = fromF<KT>(toF(vs[e]));
}

template <bool kRope>
void launchAppendKv(const Ctx& c, const PagedKv& kv, const BatchLayout& batch, const void* k,
                    const void* v, const double* invFreq, const char* op, void* q = nullptr,
                    int G = 0) {
  if (batch.numTokens <= 0) return;
  const AttnArgs a = kvArgs(kv, batch);
  const dim3 grid(unsigned(batch.numTokens), unsigned(kv.numKvHeads));
  const unsigned threads = kv.kDim >= 128 ? (kRope ? 64 : 128) : 32;
  auto* kb = static_cast<const bf16*>(k);
  auto* vb = static_cast<const bf16*>(v);
  auto* qb = static_cast<bf16*>(q);
  if (kv.dtype == DType::BF16)
    launchKernel(c, op, appendKvKernel<bf16, kRope>, grid, threads, 0, a, kb, vb, invFreq, qb, G, c.err);
  else
    launchKernel(c, op, appendKvKernel<float, kRope>, grid, threads, 0, a, kb, vb, invFreq, qb, G, c.err);
}

}  // namespace

void rope(const Ctx& c, void* x, const int32_t* positions, int T, int heads, int headDim,
          const double* invFreq) {
  if (T <= 0 || heads <= 0) return;
  const int half = headDim / 2;
  if (half > kRopeMaxHalf) throw Error("rope: headDim " + std::to_string(headDim) + " is above 512");
  const unsigned threads = heads * half >= 256 ? 256 : (heads * half >= 64 ? 128 : 32);
  launchKernel(c, "rope", ropeKernel, T, threads, 0, static_cast<bf16*>(x), positions, heads,
               headDim, invFreq);
}

void appendKv(const Ctx& c, const PagedKv& kv, const BatchLayout& batch, const void* k,
              const void* v) {
  launchAppendKv<false>(c, kv, batch, k, v, nullptr, "appendKv");
}

void ropeAppendKv(const Ctx& c, const PagedKv& kv, const BatchLayout& batch, const void* k,
                  const void* v, const double* invFreq, void* q, int numHeads) {
  if (q && (numHeads <= 0 || numHeads % kv.numKvHeads != 0))
    throw Error("ropeQAppendKv: numHeads " + std::to_string(numHeads) +
                " is not a positive multiple of numKvHeads " + std::to_string(kv.numKvHeads));
  launchAppendKv<true>(c, kv, batch, k, v, invFreq, q ? "ropeQAppendKv" : "ropeAppendKv", q,
                       q ? numHeads / kv.numKvHeads : 0);
}

}  // namespace cuda
}  // namespace mixattn
