/**
 * The vocab-wide reductions of sampling, behind one interface (`RowReducer`) so a device
 * backend can run them where the logits are (argmax, max/sum-exp, top-k select, top-p
 * threshold, the draw, top-n logprobs) and return a few numbers instead of a vocab row.
 * The caller draws the uniform number from its seeded PRNG, so a device reducer consumes
 * the same random stream and reproduces the same tokens for the same seed.
 *
 * The CPU reducer makes a few linear passes and never sorts the vocabulary: top-k finds the
 * k-th largest logit with one heap pass (quickselect for k > 4096), so only k exps are
 * taken; top-p buckets the mass in half-nat bins to find the few candidates near the cut,
 * then a weighted quickselect finds the exact threshold where the cumulative mass first
 * reaches p. Its only vocab-sized memory is one scratch buffer (weights + candidate ids)
 * allocated once per reducer (a model shares one between its samplers).
 */
import { kthLargest, kthLargestOfRow, massThreshold, nucleusPrefilter, topN } from './select.js';

/** Largest top-k found with a heap pass; larger ones use quickselect. */
const HEAP_TOP_K = 4096;

export interface ReduceSpec {
  /** 0 = argmax. */
  readonly temperature: number;
  /** 0 = off. */
  readonly topK: number;
  /** 1 = off. */
  readonly topP: number;
  /** 0 = off. */
  readonly minP: number;
  /** Uniform in [0, 1) from the caller's PRNG; unused when temperature is 0. */
  readonly uniform: number;
  /** Compute the chosen token's logprob. */
  readonly logprobs: boolean;
  /** How many of the most likely tokens to report (0 = none). */
  readonly topLogprobs: number;
}

export interface TokenLogprob {
  readonly token: number;
  readonly logprob: number;
}

export interface Reduced {
  readonly token: number;
  /** NaN unless spec.logprobs. */
  readonly logprob: number;
  /** Most likely first; empty unless spec.topLogprobs > 0. */
  readonly topLogprobs: TokenLogprob[];
}

/**
 * Picks a token from one row of (already penalised) logits.
 *
 * Truncation follows HF transformers' warper order: temperature, top-k (keep logits >= the
 * k-th largest: ties with it stay), top-p (over the top-k set renormalised: keep the most
 * likely tokens until their mass first reaches p; ties with the last one stay), min-p (keep
 * p >= minP · p_max). The token is drawn from what is left, renormalised.
 *
 * Reported logprobs are the log-softmax of logits / T over the whole vocabulary: after the
 * penalties and the temperature, before any truncation (T = 1 when temperature is 0, where
 * the sampling distribution would be a point mass).
 */
export interface RowReducer {
  reduce(row: Float32Array, spec: ReduceSpec): Reduced;
}

export function argmax(row: Float32Array): number {
  let best = 0;
  let m = row[0];
  for (let i = 1; i < row.length; i++) {
    if (row[i] > m) {
      m = row[i];
      best = i;
    }
  }
  return best;
}

function checkedMax(m: number): number {
  if (!Number.isFinite(m)) throw new RangeError(`sampling: the logits have no finite maximum (max = ${m})`);
  return m;
}

function rowMax(row: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > m) m = row[i];
  return checkedMax(m);
}

/** log Σ exp((row - m) · invT), in float64. */
function logSumExp(row: Float32Array, m: number, invT: number): number {
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp((row[i] - m) * invT);
  return Math.log(s);
}

export class CpuReducer implements RowReducer {
  private w = new Float64Array(0);
  private idx = new Int32Array(0);
  private heap = new Float64Array(0);
  private readonly bins = new Float64Array(65);

  /** Scratch for `vocabSize` tokens, allocated now rather than on the first row. */
  constructor(vocabSize = 0) {
    this.ensure(vocabSize);
  }

  reduce(row: Float32Array, spec: ReduceSpec): Reduced {
    if (row.length === 0) throw new RangeError('sampling: empty logits row');
    const greedy = spec.temperature === 0;
    const invT = greedy ? 1 : 1 / spec.temperature;
    let token: number;
    let sumAll = NaN; // Σ exp((l - max) / T) over the vocab, when truncation computed it
    let m: number;
    if (greedy) {
      token = argmax(row);
      m = checkedMax(row[token]);
    } else {
      m = rowMax(row);
      ({ token, sumAll } = this.draw(row, spec, m, invT));
    }
    const needZ = spec.logprobs || spec.topLogprobs > 0;
    const logZ = !needZ ? NaN : Number.isNaN(sumAll) ? logSumExp(row, m, invT) : Math.log(sumAll);
    const lp = (t: number) => (row[t] - m) * invT - logZ;
    return {
      token,
      logprob: spec.logprobs ? lp(token) : NaN,
      topLogprobs: spec.topLogprobs > 0 ? topN(row, spec.topLogprobs).map((t) => ({ token: t, logprob: lp(t) })) : [],
    };
  }

  private ensure(V: number): void {
    if (this.idx.length >= V) return;
    const buf = new ArrayBuffer(V * 12);
    this.w = new Float64Array(buf, 0, V);
    this.idx = new Int32Array(buf, V * 8, V);
  }

  /**
   * The tokens left after truncation and their renormalised probabilities (allocates: for
   * tests and inspection; sampling itself uses the scratch).
   */
  kept(row: Float32Array, spec: Omit<ReduceSpec, 'uniform' | 'logprobs' | 'topLogprobs'>): { ids: number[]; probs: number[] } {
    if (spec.temperature === 0) return { ids: [argmax(row)], probs: [1] };
    const m = rowMax(row);
    const { n, sum } = this.truncate(row, spec, m, 1 / spec.temperature);
    const ids = Array.from(this.idx.subarray(0, n)).sort((a, b) => a - b);
    return { ids, probs: ids.map((i) => this.w[i] / sum) };
  }

  private draw(row: Float32Array, spec: ReduceSpec, m: number, invT: number): { token: number; sumAll: number } {
    const { n, sum, sumAll } = this.truncate(row, spec, m, invT);
    const { w, idx } = this;
    const target = spec.uniform * sum;
    let acc = 0;
    for (let j = 0; j < n; j++) {
      acc += w[idx[j]];
      if (acc > target) return { token: idx[j], sumAll };
    }
    return { token: idx[n - 1], sumAll }; // rounding: target at the very top of the mass
  }

  /** Leaves the kept ids in idx[0, n) and their weights exp((l - max) / T) in w[id]. */
  private truncate(row: Float32Array, spec: Omit<ReduceSpec, 'uniform' | 'logprobs' | 'topLogprobs'>, m: number, invT: number) {
    const V = row.length;
    this.ensure(V);
    const { w, idx } = this;
    let n = 0;
    const topK = spec.topK > 0 && spec.topK < V ? spec.topK : 0;
    if (topK > 0 && topK <= HEAP_TOP_K) {
      if (this.heap.length < topK) this.heap = new Float64Array(HEAP_TOP_K);
      const kth = kthLargestOfRow(row, topK, this.heap);
      for (let i = 0; i < V; i++) if (row[i] >= kth && row[i] > -Infinity) idx[n++] = i;
    } else {
      for (let i = 0; i < V; i++) if (row[i] > -Infinity) idx[n++] = i;
      if (topK > 0 && topK < n) {
        const kth = kthLargest(idx, n, row, topK);
        n = compact(idx, n, row, kth);
      }
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const i = idx[j];
      const x = Math.exp((row[i] - m) * invT);
      w[i] = x;
      sum += x;
    }
    const sumAll = topK > 0 ? NaN : sum;
    if (spec.topP < 1) {
      const target = spec.topP * sum;
      n = nucleusPrefilter(idx, n, row, w, m, invT, target, this.bins);
      const thr = massThreshold(idx, n, w, target);
      n = compact(idx, n, w, thr);
      sum = sumOf(idx, n, w);
    }
    // The maximum has weight exactly 1, so min-p compares the weight itself.
    if (spec.minP > 0) {
      n = compact(idx, n, w, spec.minP);
      sum = sumOf(idx, n, w);
    }
    return { n, sum, sumAll };
  }
}

/** Keeps idx entries whose key is >= thr, in order; returns the new count. */
function compact(idx: Int32Array, n: number, keys: Float32Array | Float64Array, thr: number): number {
  let k = 0;
  for (let j = 0; j < n; j++) {
    const i = idx[j];
    if (keys[i] >= thr) idx[k++] = i;
  }
  return k;
}

function sumOf(idx: Int32Array, n: number, w: Float64Array): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += w[idx[j]];
  return s;
}
