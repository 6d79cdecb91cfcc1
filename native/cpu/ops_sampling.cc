// The CPU twin of Backend::sample: the rule of backend.h row by row, with plain selection
// algorithms (nth_element for top-k, a weighted quickselect for the top-p threshold, a partial
// sort of the top logprobs) and the shared arithmetic of common/sample_math.h. Compiled with
// -ffp-contract=off (CMakeLists.txt) so no multiply-add is fused: every fp32 step rounds as on
// the GPU and in lib/sampling.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/sample_math.h"
#include "cpu/cpu_ops.h"

namespace mixattn {
namespace cpu {

namespace {

using namespace sampling;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Scratch of one row, reused by the thread (no vocab-sized allocation per step).
struct RowScratch {
  std::vector<float> vals;      // top-k: the finite logits
  std::vector<int32_t> ids;     // C1 (index order), then the top logprobs' candidates
  std::vector<float> w;         // C1's fp32 weights
  std::vector<uint32_t> q;      // C1's integer weights
  std::vector<uint32_t> keys;   // top-p: the positive integer weights (permuted)
};

// The largest theta with sum_{q >= theta} q >= need over keys[0, n): a quickselect with a
// three-way partition that carries the mass above the current range. Permutes keys.
uint32_t massThreshold(uint32_t* keys, size_t n, uint64_t need) {
  size_t lo = 0, hi = n;
  uint64_t acc = 0;  // mass of the keys known to rank above [lo, hi)
  while (lo < hi) {
    const uint32_t a = keys[lo], b = keys[lo + (hi - lo) / 2], c = keys[hi - 1];
    const uint32_t pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    size_t lt = lo, i = lo, gt = hi;
    uint64_t massGt = 0, massEq = 0;
    while (i < gt) {
      const uint32_t v = keys[i];
      if (v > pivot) {
        std::swap(keys[lt++], keys[i++]);
        massGt += v;
      } else if (v < pivot) {
        std::swap(keys[i], keys[--gt]);
      } else {
        massEq += v;
        ++i;
      }
    }
    if (acc + massGt >= need) hi = lt;
    else if (acc + massGt + massEq >= need) return pivot;
    else {
      acc += massGt + massEq;
      lo = gt;
    }
  }
  return 0;
}

// The k-th largest finite value of y (k <= the finite count): one pass with a min-heap of k
// values for the usual small k, nth_element on a copy beyond.
float kthLargest(const float* y, int V, int k, std::vector<float>& buf) {
  buf.clear();
  const auto after = std::greater<float>();
  if (k <= 4096) {
    for (int i = 0; i < V; ++i) {
      const float x = y[i];
      if (!(x > -kInf)) continue;
      if (int(buf.size()) < k) {
        buf.push_back(x);
        std::push_heap(buf.begin(), buf.end(), after);
      } else if (x > buf.front()) {
        std::pop_heap(buf.begin(), buf.end(), after);
        buf.back() = x;
        std::push_heap(buf.begin(), buf.end(), after);
      }
    }
    return buf.front();
  }
  for (int i = 0; i < V; ++i)
    if (y[i] > -kInf) buf.push_back(y[i]);
  std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(), after);
  return buf[size_t(k - 1)];
}

void sampleRow(const SampleOut& out, float* y, const SampleRow& p, const int32_t* penalties, int r,
               int V, RowScratch& s) {
  // 0. Penalties, in place.
  const int32_t* pair = penalties + 2 * size_t(p.penaltyStart);
  for (int j = 0; j < p.penaltyCount; ++j) {
    float& x = y[pair[2 * j]];
    x = penalisedLogit(x, pair[2 * j + 1], p.repetitionPenalty, p.presencePenalty,
                       p.frequencyPenalty);
  }
  for (int j = 0; j < out.topStride; ++j) {
    out.topIds[size_t(r) * out.topStride + j] = -1;
    out.topLogprobs[size_t(r) * out.topStride + j] = kNaN;
  }
  out.logprobs[r] = kNaN;
  // 1. The maximum (NaN never; the first of equal maxima).
  float m = -kInf;
  int at = 0, finite = 0;
  for (int i = 0; i < V; ++i) {
    if (y[i] > m) m = y[i], at = i;
    finite += y[i] > -kInf && y[i] < kInf;
  }
  if (!std::isfinite(m)) {
    out.ids[r] = -1;
    return;
  }
  const bool greedy = p.temperature == 0.f;
  const float invT = greedy ? 1.f : invTemperature(p.temperature);
  double sumAll = 0;  // sum_C0 w: the logprobs' normaliser
  int token = at;
  if (greedy) {
    if (p.logprobs || p.topLogprobs > 0)
      for (int i = 0; i < V; ++i)
        if (y[i] > -kInf) sumAll += expWeight(scaledLogit(y[i], m, invT));
  } else {
    // 4. top-k threshold.
    const float kth = p.topK > 0 && p.topK < finite ? kthLargest(y, V, p.topK, s.vals) : -kInf;
    // 3. Weights of C1 in index order (and of C0 when the logprobs need their sum).
    const bool wantSum = p.logprobs || p.topLogprobs > 0;
    s.ids.clear(), s.w.clear(), s.q.clear();
    uint64_t mass = 0;
    for (int i = 0; i < V; ++i) {
      const float x = y[i];
      if (!(x > -kInf)) continue;
      if (x >= kth) {
        const float w = expWeight(scaledLogit(x, m, invT));
        const uint32_t q = integerWeight(w);
        s.ids.push_back(i), s.w.push_back(w), s.q.push_back(q);
        mass += q;
        sumAll += w;
      } else if (wantSum) {
        sumAll += expWeight(scaledLogit(x, m, invT));
      }
    }
    // 5. top-p threshold.
    uint32_t theta = 0;
    if (p.topP < 1.f) {
      const uint64_t need = uint64_t(std::ceil(double(p.topP) * double(mass)));
      s.keys.clear();
      for (uint32_t q : s.q)
        if (q > 0) s.keys.push_back(q);
      theta = massThreshold(s.keys.data(), s.keys.size(), need);
    }
    // 6-7. min-p, then the draw in index order.
    const float minP = p.minP > 0.f ? p.minP : 0.f;
    const size_t n = s.ids.size();
    uint64_t total = 0;
    for (size_t j = 0; j < n; ++j)
      if (s.q[j] >= theta && s.w[j] >= minP) total += s.q[j];
    const uint64_t t = std::min(uint64_t(std::floor(p.uniform * double(total))), total - 1);
    uint64_t acc = 0;
    for (size_t j = 0; j < n; ++j) {
      if (!(s.q[j] >= theta && s.w[j] >= minP)) continue;
      acc += s.q[j];
      if (acc > t) {
        token = s.ids[j];
        break;
      }
    }
  }
  out.ids[r] = token;
  const double logZ = std::log(sumAll);
  if (p.logprobs) out.logprobs[r] = float(double(scaledLogit(y[token], m, invT)) - logZ);
  if (p.topLogprobs > 0) {
    s.ids.clear();
    for (int i = 0; i < V; ++i)
      if (!std::isnan(y[i])) s.ids.push_back(i);
    const size_t n = std::min(size_t(p.topLogprobs), s.ids.size());
    std::partial_sort(s.ids.begin(), s.ids.begin() + n, s.ids.end(), [&](int32_t a, int32_t b) {
      const uint32_t ka = orderedKey(y[a]), kb = orderedKey(y[b]);
      return ka > kb || (ka == kb && a < b);
    });
    for (size_t j = 0; j < n; ++j) {
      const int32_t i = s.ids[j];
      out.topIds[size_t(r) * out.topStride + j] = i;
      out.topLogprobs[size_t(r) * out.topStride + j] =
          float(double(scaledLogit(y[i], m, invT)) - logZ);
    }
  }
}

}  // namespace

void sample(ThreadPool& pool, const SampleOut& out, float* logits, const SampleRow* rows,
            const int32_t* penalties, int numRows, int vocab) {
  pool.parallelFor(size_t(numRows), [&](size_t begin, size_t end) {
    thread_local RowScratch scratch;
    for (size_t r = begin; r < end; ++r)
      sampleRow(out, logits + r * size_t(vocab), rows[r], penalties, int(r), vocab, scratch);
  });
}

}  // namespace cpu
}  // namespace mixattn
