import { describe, expect, it } from 'vitest';
import { kthLargest, kthLargestOfRow, massThreshold, topN } from '../../lib/sampling/select.js';
import { Prng } from '../../lib/model/prng.js';

describe('selection without sorting', () => {
  const rng = new Prng(17);
  const sample = (n: number, distinct: number) => Float32Array.from({ length: n }, () => Math.floor(rng.uniform() * distinct) / 7);

  it('kthLargest equals the k-th of a sorted copy, with ties and sorted inputs', () => {
    for (const [n, distinct] of [[1, 1], [10, 3], [1000, 50], [5000, 1e9], [300, 1]]) {
      const keys = sample(n, distinct);
      const sorted = Array.from(keys).sort((a, b) => b - a);
      for (const k of new Set([1, Math.min(2, n), Math.ceil(n / 3), n])) {
        const idx = Int32Array.from({ length: n }, (_, i) => i);
        expect(kthLargest(idx, n, keys, k)).toBe(sorted[k - 1]);
        expect(Array.from(idx).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      }
      const asc = Float32Array.from(sorted).reverse();
      const idx = Int32Array.from({ length: n }, (_, i) => i);
      expect(kthLargest(idx, n, asc, 1)).toBe(sorted[0]);
    }
  });

  it('massThreshold: the weight where the descending cumulative mass first reaches the target', () => {
    for (let t = 0; t < 50; t++) {
      const n = 1 + Math.floor(rng.uniform() * 400);
      const w = Float64Array.from(sample(n, 20 + t * 10), (x) => x + 0.01);
      const total = w.reduce((a, b) => a + b, 0);
      const target = rng.uniform() * total;
      const sorted = Array.from(w).sort((a, b) => b - a);
      let acc = 0;
      let expected = sorted[n - 1];
      for (const x of sorted) {
        acc += x;
        if (acc >= target) {
          expected = x;
          break;
        }
      }
      const idx = Int32Array.from({ length: n }, (_, i) => i);
      expect(massThreshold(idx, n, w, target)).toBe(expected);
    }
  });

  it('kthLargestOfRow: the heap pass agrees with a sort, skips -inf, and says when there are fewer than k', () => {
    const heap = new Float64Array(300);
    for (const [n, distinct] of [[1000, 50], [5000, 1e9], [40, 3]]) {
      const row = sample(n, distinct);
      for (let i = 0; i < n; i += 7) row[i] = -Infinity;
      const finite = Array.from(row).filter((x) => x > -Infinity).sort((a, b) => b - a);
      for (const k of [1, 2, 17, 300]) expect(kthLargestOfRow(row, k, heap)).toBe(k <= finite.length ? finite[k - 1] : -Infinity);
    }
  });

  it('topN: largest first, ties by lower id', () => {
    const row = Float32Array.from([0.5, 2, -1, 2, 7, 0.5, 3]);
    expect(topN(row, 3)).toEqual([4, 6, 1]);
    expect(topN(row, 5)).toEqual([4, 6, 1, 3, 0]);
    expect(topN(row, 20)).toEqual([4, 6, 1, 3, 0, 5, 2]);
  });
});
