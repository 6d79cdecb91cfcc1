/**
 * The vocab-wide reductions of sampling, behind one interface (`RowReducer`). The same rule
 * runs on the device (Backend::sample in native/backend.h: the CPU twin and the CUDA kernel),
 * which returns a few numbers instead of a vocab row; this is its TypeScript twin, and the
 * three choose the same token for the same row, parameters and uniform u, bit for bit.
 *
 * The rule (one row y of penalised fp32 logits; the arithmetic is in weights.ts):
 *  1. m = the largest y that is not NaN; a row where m is not finite is an error. The
 *     candidates C0 are the finite y (NaN and -inf never are).
 *  2. Greedy (fp32(T) = 0): the token is the lowest index with y = m.
 *  3. Else invT = fp32(1 / fp32(T)); per candidate s = fp32(y - m) × invT (0 at m),
 *     w = expWeight(s) in (0, 1] (exactly 1 at m), and the integer weight q = floor(w × 2^31).
 *  4. top-k (0 < k < |C0|): C1 = {i in C0 : y_i >= the k-th largest y of C0} (ties kept).
 *  5. top-p (fp32(p) < 1): need = ceil(fp32(p) × Σ_{C1} q) (in double); θ = the largest
 *     integer weight with Σ_{C1, q >= θ} q >= need; keep q >= θ (ties kept).
 *  6. min-p (fp32(minP) > 0): keep w >= fp32(minP) (p / p_max >= minP, since w_max = 1).
 *  7. K = what 4–6 keep; S = Σ_K q; t = min(floor(u × S), S - 1) (in double); the token is
 *     the first i of K in index order whose running sum of q (in index order) exceeds t.
 * Integer sums are exact (V × 2^31 < 2^53 for V <= 2^22), and every fp32 step rounds the
 * same way everywhere, so no tie-break depends on summation order. Tokens with q = 0
 * (w < 2^-31 of the top token's) are never drawn.
 *
 * The processors' order is HF's: penalties (repetition, then presence/frequency; see
 * processors.ts), temperature, top-k, top-p (over the top-k set), min-p, the draw.
 *
 * Reported logprobs are s_i - log Σ_{C0} w, the log-softmax of y / T over the whole
 * vocabulary after the penalties, before any truncation (T = 1 when greedy, where the sampling
 * distribution would be a point mass); within fp32 rounding of the float64 value (the device
 * sums in another order).
 *
 * This reducer makes a few linear passes and never sorts the vocabulary: top-k finds the
 * k-th largest logit with one heap pass (quickselect for k > 4096); top-p buckets the mass by
 * the bit length of q to find the few candidates near the cut, then a weighted quickselect
 * finds θ. Its vocab-sized scratch is allocated once per reducer (a model shares one).
 */
import { kthLargest, kthLargestOfRow, massThreshold, topN, weightPrefilter } from './select.js';
import { MAX_SAMPLING_VOCAB, expWeight, integerWeight, invTemperature, scaledLogit } from './weights.js';

/** Largest top-k found with a heap pass; larger ones use quickselect. */
const HEAP_TOP_K = 4096;

const f = Math.fround;

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

/** Picks a token from one row of (already penalised) logits by the rule above. */
export interface RowReducer {
  reduce(row: Float32Array, spec: ReduceSpec): Reduced;
}

/** The lowest index of the largest value; NaN never wins; 0 when nothing beats -inf. */
export function argmax(row: Float32Array): number {
  let best = 0;
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) {
    if (row[i] > m) {
      m = row[i];
      best = i;
    }
  }
  return best;
}

/** The truncation parameters of the rule (ReduceSpec without the draw and the logprobs). */
type Truncation = Pick<ReduceSpec, 'temperature' | 'topK' | 'topP' | 'minP'>;

export class CpuReducer implements RowReducer {
  /** q (integer weights) and w (fp32 weights) by token id, valid for the ids in idx[0, n). */
  private q = new Float64Array(0);
  private w = new Float32Array(0);
  /** The top-k set C1 in index order; cand: scratch of the top-p search (permuted). */
  private idx = new Int32Array(0);
  private cand = new Int32Array(0);
  private heap = new Float64Array(0);
  private readonly bins = new Float64Array(33);

  /** Scratch for `vocabSize` tokens, allocated now rather than on the first row. */
  constructor(vocabSize = 0) {
    this.ensure(vocabSize);
  }

  reduce(row: Float32Array, spec: ReduceSpec): Reduced {
    const V = row.length;
    if (V === 0) throw new RangeError('sampling: empty logits row');
    if (V > MAX_SAMPLING_VOCAB) throw new RangeError(`sampling: a vocabulary of ${V} exceeds the ${MAX_SAMPLING_VOCAB} tokens whose weights sum exactly`);
    const m = maxOf(row);
    const T = f(spec.temperature);
    const greedy = T === 0;
    const invT = greedy ? 1 : invTemperature(T);
    let token: number;
    let sumAll = NaN; // Σ_{C0} w, when the draw computed it
    if (greedy) token = argmax(row);
    else ({ token, sumAll } = this.draw(row, spec, m, invT));
    const needZ = spec.logprobs || spec.topLogprobs > 0;
    const logZ = !needZ ? NaN : Math.log(Number.isNaN(sumAll) ? weightSum(row, m, invT) : sumAll);
    const lp = (t: number) => scaledLogit(row[t], m, invT) - logZ;
    return {
      token,
      logprob: spec.logprobs ? lp(token) : NaN,
      topLogprobs: spec.topLogprobs > 0 ? topN(row, spec.topLogprobs).map((t) => ({ token: t, logprob: lp(t) })) : [],
    };
  }

  /**
   * The tokens K left after truncation and their renormalised probabilities q / Σ_K q
   * (allocates: for tests and inspection).
   */
  kept(row: Float32Array, spec: Truncation): { ids: number[]; probs: number[] } {
    if (f(spec.temperature) === 0) return { ids: [argmax(row)], probs: [1] };
    const m = maxOf(row);
    const { n, theta, minP } = this.truncate(row, spec, m, invTemperature(f(spec.temperature)), false);
    const ids: number[] = [];
    for (let j = 0; j < n; j++) {
      const i = this.idx[j];
      if (this.q[i] >= theta && this.w[i] >= minP) ids.push(i);
    }
    const sum = ids.reduce((a, i) => a + this.q[i], 0);
    return { ids, probs: ids.map((i) => this.q[i] / sum) };
  }

  private ensure(V: number): void {
    if (this.idx.length >= V) return;
    const buf = new ArrayBuffer(V * 20);
    this.q = new Float64Array(buf, 0, V);
    this.w = new Float32Array(buf, V * 8, V);
    this.idx = new Int32Array(buf, V * 12, V);
    this.cand = new Int32Array(buf, V * 16, V);
  }

  private draw(row: Float32Array, spec: ReduceSpec, m: number, invT: number): { token: number; sumAll: number } {
    const { n, theta, minP, sumAll } = this.truncate(row, spec, m, invT, spec.logprobs || spec.topLogprobs > 0);
    const { q, w, idx } = this;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const i = idx[j];
      if (q[i] >= theta && w[i] >= minP) total += q[i];
    }
    const target = Math.min(Math.floor(spec.uniform * total), total - 1);
    let acc = 0;
    for (let j = 0; j < n; j++) {
      const i = idx[j];
      if (!(q[i] >= theta && w[i] >= minP)) continue;
      acc += q[i];
      if (acc > target) return { token: i, sumAll };
    }
    throw new Error(`sampling: no token drawn (mass ${total}, target ${target})`); // unreachable: the top token weighs 2^31
  }

  /**
   * Steps 3–6 of the rule: leaves C1 in idx[0, n) (index order) with q and w filled, and
   * returns the top-p threshold θ (0 = off) and min-p (0 = off) that select K from it, with
   * Σ_{C0} w when `wantSum` (for the logprobs; else NaN).
   */
  private truncate(row: Float32Array, spec: Truncation, m: number, invT: number, wantSum: boolean) {
    const V = row.length;
    this.ensure(V);
    const { q, w, idx } = this;
    const topK = spec.topK > 0 && spec.topK < V ? spec.topK : 0;
    let kth = -Infinity;
    if (topK > 0 && topK <= HEAP_TOP_K) {
      if (this.heap.length < topK) this.heap = new Float64Array(HEAP_TOP_K);
      kth = kthLargestOfRow(row, topK, this.heap);
    } else if (topK > 0) {
      let c = 0;
      for (let i = 0; i < V; i++) if (row[i] > -Infinity) this.cand[c++] = i;
      if (topK < c) kth = kthLargest(this.cand, c, row, topK);
    }
    // Σ_{C0} w only when logprobs need it: else the weights outside the top-k set are skipped.
    let n = 0;
    let sumAll = wantSum ? 0 : NaN;
    let mass = 0;
    for (let i = 0; i < V; i++) {
      const x = row[i];
      if (!(x > -Infinity)) continue;
      if (x >= kth) {
        const wi = expWeight(scaledLogit(x, m, invT));
        const qi = integerWeight(wi);
        if (wantSum) sumAll += wi;
        w[i] = wi;
        q[i] = qi;
        mass += qi;
        idx[n++] = i;
      } else if (wantSum) {
        sumAll += expWeight(scaledLogit(x, m, invT));
      }
    }
    let theta = 0;
    const topP = f(spec.topP);
    if (topP < 1) {
      const need = Math.ceil(topP * mass);
      this.cand.set(idx.subarray(0, n));
      const c = weightPrefilter(this.cand, n, q, need, this.bins);
      theta = massThreshold(this.cand, c, q, need);
    }
    const minP = f(spec.minP);
    return { n, theta, minP: minP > 0 ? minP : 0, sumAll };
  }
}

/** The largest value that is not NaN; throws unless it is finite. */
function maxOf(row: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > m) m = row[i];
  if (!Number.isFinite(m)) throw new RangeError(`sampling: the logits have no finite maximum (max = ${m})`);
  return m;
}

/** Σ expWeight(s) over the finite logits, in double (the logprobs' normaliser). */
function weightSum(row: Float32Array, m: number, invT: number): number {
  let s = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > -Infinity) s += expWeight(scaledLogit(row[i], m, invT));
  return s;
}
