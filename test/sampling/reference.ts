/** Float64, sort-based reference implementations of the sampling math, for the tests. */
import { Prng } from '../../lib/model/prng.js';

export function logSoftmax64(row: ArrayLike<number>, T = 1): number[] {
  const x = Array.from(row, (v) => v / T);
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((a, v) => a + Math.exp(v - m), 0));
  return x.map((v) => v - lse);
}

export function softmax64(row: ArrayLike<number>, T = 1): number[] {
  return logSoftmax64(row, T).map(Math.exp);
}

/** The ids HF's warpers keep (temperature, top-k, top-p, min-p), by full sorts. */
export function keptReference(row: ArrayLike<number>, o: { temperature: number; topK: number; topP: number; minP: number }): number[] {
  const V = row.length;
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b);
  let keep = new Set(order);
  if (o.topK > 0 && o.topK < V) {
    const kth = row[order[o.topK - 1]];
    keep = new Set(order.filter((i) => row[i] >= kth));
  }
  const probsOf = (set: Set<number>) => {
    const ids = order.filter((i) => set.has(i));
    const p = softmax64(ids.map((i) => row[i]), o.temperature);
    return new Map(ids.map((id, j) => [id, p[j]]));
  };
  if (o.topP < 1) {
    const p = probsOf(keep);
    const next = new Set<number>();
    let above = 0;
    let last = Infinity;
    for (const [id, q] of p) {
      // keep while the mass strictly above is < topP; ties with the last kept stay
      if (above < o.topP || row[id] === last) {
        next.add(id);
        last = row[id];
      }
      above += q;
    }
    keep = next;
  }
  if (o.minP > 0) {
    const p = probsOf(keep);
    const pmax = Math.max(...p.values());
    keep = new Set([...keep].filter((id) => p.get(id)! >= o.minP * pmax));
  }
  return [...keep].sort((a, b) => a - b);
}

export function randomRow(rng: Prng, V: number, scale = 3): Float32Array {
  const r = new Float32Array(V);
  for (let i = 0; i < V; i++) r[i] = scale * rng.normal();
  return r;
}
