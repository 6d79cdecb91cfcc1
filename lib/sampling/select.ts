/**
 * Selection without sorting: the k-th largest key and the mass threshold of top-p, both by
 * quickselect with a three-way partition of an id array (expected linear time, in place,
 * robust to runs of equal keys), and the top n of a row by one pass with a small buffer.
 */

type Keys = Float32Array | Float64Array;

function swap(idx: Int32Array, a: number, b: number): void {
  const t = idx[a];
  idx[a] = idx[b];
  idx[b] = t;
}

/** Median of the keys at the ends and middle of [lo, hi): a pivot that resists sorted input. */
function pivotOf(idx: Int32Array, keys: Keys, lo: number, hi: number): number {
  const a = keys[idx[lo]];
  const b = keys[idx[(lo + hi) >>> 1]];
  const c = keys[idx[hi - 1]];
  return a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
}

interface Parts {
  /** [lo, lt) holds keys > pivot, [lt, gt) keys == pivot, [gt, hi) keys < pivot. */
  lt: number;
  gt: number;
  /** Sum of the keys > pivot and == pivot (used by the mass search). */
  massGt: number;
  massEq: number;
}

function partition(idx: Int32Array, keys: Keys, lo: number, hi: number, pivot: number, out: Parts): void {
  let lt = lo;
  let i = lo;
  let gt = hi;
  let massGt = 0;
  let massEq = 0;
  while (i < gt) {
    const v = keys[idx[i]];
    if (v > pivot) {
      swap(idx, lt++, i++);
      massGt += v;
    } else if (v < pivot) {
      swap(idx, i, --gt);
    } else {
      massEq += v;
      i++;
    }
  }
  out.lt = lt;
  out.gt = gt;
  out.massGt = massGt;
  out.massEq = massEq;
}

/** The k-th largest of keys[idx[0..n)] (1 <= k <= n). Permutes idx. */
export function kthLargest(idx: Int32Array, n: number, keys: Keys, k: number): number {
  if (!(k >= 1 && k <= n)) throw new RangeError(`kthLargest: k must be in [1, ${n}], got ${k}`);
  const parts: Parts = { lt: 0, gt: 0, massGt: 0, massEq: 0 };
  let lo = 0;
  let hi = n;
  let need = k;
  for (;;) {
    const pivot = pivotOf(idx, keys, lo, hi);
    partition(idx, keys, lo, hi, pivot, parts);
    const above = parts.lt - lo;
    const equal = parts.gt - parts.lt;
    if (need <= above) hi = parts.lt;
    else if (need <= above + equal) return pivot;
    else {
      need -= above + equal;
      lo = parts.gt;
    }
  }
}

/**
 * The top-p threshold over non-negative weights keys[idx[0..n)]: the weight w* of the token
 * at which the cumulative mass, taken from the largest weight down, first reaches `target`.
 * Keeping every weight >= w* keeps that prefix (and any ties with its last token). Exact for
 * integer weights whose sum stays below 2^53 (the sampler's). Returns 0 (keep all) when the
 * total is short of target. Permutes idx.
 */
export function massThreshold(idx: Int32Array, n: number, keys: Float64Array, target: number): number {
  const parts: Parts = { lt: 0, gt: 0, massGt: 0, massEq: 0 };
  let lo = 0;
  let hi = n;
  let acc = 0; // mass of everything known to rank above [lo, hi)
  while (lo < hi) {
    const pivot = pivotOf(idx, keys, lo, hi);
    partition(idx, keys, lo, hi, pivot, parts);
    if (acc + parts.massGt >= target) hi = parts.lt;
    else if (acc + parts.massGt + parts.massEq >= target) return pivot;
    else {
      acc += parts.massGt + parts.massEq;
      lo = parts.gt;
    }
  }
  return 0;
}

/**
 * The k-th largest finite value of row by one sequential pass with a min-heap of k values
 * (for small k: about V comparisons and O(k log(V/k)) heap updates). -Infinity when the row
 * has fewer than k finite values. `heap` must hold at least k entries.
 */
export function kthLargestOfRow(row: Float32Array, k: number, heap: Float64Array): number {
  let size = 0;
  for (let i = 0; i < row.length; i++) {
    const x = row[i];
    if (!(x > -Infinity)) continue;
    if (size < k) {
      // sift up
      let j = size++;
      while (j > 0) {
        const parent = (j - 1) >> 1;
        if (heap[parent] <= x) break;
        heap[j] = heap[parent];
        j = parent;
      }
      heap[j] = x;
    } else if (x > heap[0]) {
      // replace the root, sift down
      let j = 0;
      for (;;) {
        const l = 2 * j + 1;
        if (l >= k) break;
        const c = l + 1 < k && heap[l + 1] < heap[l] ? l + 1 : l;
        if (heap[c] >= x) break;
        heap[j] = heap[c];
        j = c;
      }
      heap[j] = x;
    }
  }
  return size < k ? -Infinity : heap[0];
}

/**
 * Top-p prefilter over integer weights (< 2^32): buckets the candidates by bit length (so by
 * weight order: every weight of a bucket exceeds every weight of the next) and keeps only the
 * buckets down to the one where the mass from the top reaches `need`, so the exact search
 * runs on few tokens when the distribution is peaked. Zero weights are dropped. Everything it
 * drops weighs less than everything it keeps. Returns the new count.
 */
export function weightPrefilter(idx: Int32Array, n: number, q: Float64Array, need: number, bins: Float64Array): number {
  // bins[b]: mass of the weights with Math.clz32(w) === b (b = 32: w = 0, never counted)
  if (bins.length < 33) throw new RangeError('weightPrefilter: bins must hold 33 entries');
  bins.fill(0);
  for (let j = 0; j < n; j++) bins[Math.clz32(q[idx[j]])] += q[idx[j]];
  let last = 31;
  let cum = 0;
  for (let b = 0; b < 32; b++) {
    cum += bins[b];
    if (cum >= need) {
      last = b;
      break;
    }
  }
  let k = 0;
  for (let j = 0; j < n; j++) {
    const w = q[idx[j]];
    if (w > 0 && Math.clz32(w) <= last) idx[k++] = idx[j];
  }
  return k;
}

/**
 * Ids of the n largest entries of row, largest first (ties: lower id first), NaN never (fewer
 * than n when the row has fewer values that are not NaN). One pass.
 */
export function topN(row: Float32Array, n: number): number[] {
  const k = Math.min(n, row.length);
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const x = row[i];
    if (Number.isNaN(x) || (ids.length === k && !(x > vals[k - 1]))) continue;
    let j = ids.length === k ? k - 1 : ids.length;
    while (j > 0 && x > vals[j - 1]) {
      vals[j] = vals[j - 1];
      ids[j] = ids[j - 1];
      j--;
    }
    vals[j] = x;
    ids[j] = i;
  }
  return ids;
}
