import { describe, expect, it } from 'vitest';
import { CpuReducer, Sampler, argmax, type SamplingParams } from '../../lib/sampling/index.js';
import { Prng } from '../../lib/model/prng.js';
import { keptReference, logSoftmax64, randomRow, softmax64 } from './reference.js';

const draws = (row: Float32Array, params: SamplingParams, n: number): number[] => {
  const s = new Sampler(params, { vocabSize: row.length });
  return Array.from({ length: n }, () => s.sample(row).token);
};

describe('Sampler', () => {
  it('temperature 0 is argmax, without touching the PRNG', () => {
    const rng = new Prng(3);
    for (let k = 0; k < 20; k++) {
      const row = randomRow(rng, 1000 + k);
      const s = new Sampler({ temperature: 0 }, { vocabSize: row.length });
      let best = 0;
      for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
      expect(s.sample(row).token).toBe(best);
      expect(argmax(row)).toBe(best);
    }
  });

  it('with a temperature, draws follow softmax(logits / T) (chi-squared over 40k seeded draws)', () => {
    const row = Float32Array.from([1.5, 0.2, -0.7, 2.1, 0.9, -2, 1.1, 0]);
    for (const T of [0.5, 1, 1.7]) {
      const p = softmax64(row, T);
      const N = 40_000;
      const counts = new Array<number>(row.length).fill(0);
      for (const t of draws(row, { temperature: T, seed: 11 }, N)) counts[t]++;
      const chi2 = counts.reduce((a, c, i) => a + (c - N * p[i]) ** 2 / (N * p[i]), 0);
      // 7 degrees of freedom: P(chi2 > 24.3) ≈ 0.001
      expect(chi2).toBeLessThan(24.3);
    }
  });

  it('top-k, top-p and min-p keep exactly the reference sets (vocab 50k, no sorting of the vocab)', () => {
    const rng = new Prng(5);
    const reducer = new CpuReducer(50_000);
    const cases = [
      { temperature: 1, topK: 40, topP: 1, minP: 0 },
      { temperature: 0.7, topK: 0, topP: 0.9, minP: 0 },
      { temperature: 1.3, topK: 0, topP: 1, minP: 0.05 },
      { temperature: 0.8, topK: 500, topP: 0.8, minP: 0.02 },
      { temperature: 2, topK: 3, topP: 0.5, minP: 0 },
      { temperature: 1, topK: 1, topP: 1, minP: 0 },
      { temperature: 1, topK: 6000, topP: 1, minP: 0 }, // beyond the heap: quickselect
      { temperature: 0.5, topK: 0, topP: 0.95, minP: 0, scale: 8 }, // peaked: the prefilter cuts most bins
      { temperature: 3, topK: 0, topP: 0.3, minP: 0 },
    ];
    for (const { scale, ...c } of cases.map((x) => ({ scale: 2, ...x }))) {
      const row = randomRow(rng, 50_000, scale);
      const { ids, probs } = reducer.kept(row, c);
      expect(ids).toEqual(keptReference(row, c));
      // renormalised over the kept set (integer weights: within 2^-31 of the top token's)
      const ref = softmax64(ids.map((i) => row[i]), c.temperature);
      probs.forEach((q, j) => expect(Math.abs(q - ref[j])).toBeLessThan(1e-6));
    }
  });

  it('ties with the k-th logit are kept; a top-k larger than the vocab keeps all', () => {
    const row = Float32Array.from([1, 3, 2, 2, 2, 0]);
    const r = new CpuReducer(6);
    expect(r.kept(row, { temperature: 1, topK: 2, topP: 1, minP: 0 }).ids).toEqual([1, 2, 3, 4]);
    expect(r.kept(row, { temperature: 1, topK: 10, topP: 1, minP: 0 }).ids).toEqual([0, 1, 2, 3, 4, 5]);
    // -inf logits are never candidates
    const masked = Float32Array.from([0, -Infinity, 1, -Infinity]);
    expect(r.kept(masked, { temperature: 1, topK: 0, topP: 1, minP: 0 }).ids).toEqual([0, 2]);
  });

  it('sampled tokens stay inside the kept set', () => {
    const row = randomRow(new Prng(8), 2000, 2);
    const c = { temperature: 0.9, topK: 50, topP: 0.7, minP: 0.01 };
    const kept = new Set(keptReference(row, c));
    for (const t of draws(row, { ...c, seed: 1 }, 2000)) expect(kept.has(t)).toBe(true);
  });

  it('penalties match a hand computation and leave the caller row unchanged', () => {
    const row = Float32Array.from([2, -1, 0.5, 3, 0]);
    const s = new Sampler(
      { temperature: 0, repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25, logprobs: true, topLogprobs: 5 },
      { vocabSize: 5, promptIds: [0, 1] },
    );
    for (const t of [2, 2, 1]) s.history.push(t);
    const r = s.sample(row);
    // repetition (prompt ∪ output = {0,1,2}): 2/2, -1·2, 0.5/2; then output counts {2: 2, 1: 1}:
    // t2: 0.25 - (2·0.25 + 0.5) = -0.75; t1: -2 - (0.25 + 0.5) = -2.75
    const expected = logSoftmax64([1, -2.75, -0.75, 3, 0]);
    expect(r.token).toBe(3);
    expect(r.logprob).toBeCloseTo(expected[3], 6);
    const top = r.topLogprobs!;
    expect(top.map((x) => x.token)).toEqual([3, 0, 4, 2, 1]);
    top.forEach((x) => expect(x.logprob).toBeCloseTo(expected[x.token], 6));
    expect(Array.from(row)).toEqual([2, -1, 0.5, 3, 0]);
    // the chosen token joined the history: next step penalises token 3 as well
    expect(s.history.count(3)).toBe(1);
    const r2 = s.sample(row);
    expect(r2.logprob).toBeCloseTo(logSoftmax64([1, -2.75, -0.75, 1.5 - 0.75, 0])[r2.token], 6);
  });

  it('the same seed gives the same tokens, a different seed different ones', () => {
    const rng = new Prng(2);
    const rows = Array.from({ length: 64 }, () => randomRow(rng, 3000, 1));
    const run = (seed: number) => {
      const s = new Sampler({ temperature: 1, topP: 0.95, seed }, { vocabSize: 3000 });
      return rows.map((r) => s.sample(r).token);
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
    const a = new Sampler({ temperature: 1 }, { vocabSize: 3 });
    expect(Number.isSafeInteger(a.seed)).toBe(true);
  });

  it('logprobs: log-softmax(logits / T) of the full vocab (to fp32 rounding), before truncation', () => {
    const rng = new Prng(9);
    const row = randomRow(rng, 20, 2);
    for (const T of [0, 0.6, 1.4]) {
      const s = new Sampler({ temperature: T, topK: 3, seed: 4, logprobs: true, topLogprobs: 20 }, { vocabSize: 20 });
      const r = s.sample(row);
      const ref = logSoftmax64(row, T === 0 ? 1 : T);
      expect(Math.abs(r.logprob! - ref[r.token])).toBeLessThan(1e-5);
      expect(r.topLogprobs).toHaveLength(20);
      const sum = r.topLogprobs!.reduce((a, x) => a + Math.exp(x.logprob), 0);
      expect(Math.abs(sum - 1)).toBeLessThan(1e-6);
      r.topLogprobs!.forEach((x, j) => {
        expect(Math.abs(x.logprob - ref[x.token])).toBeLessThan(1e-5);
        if (j > 0) expect(x.logprob).toBeLessThanOrEqual(r.topLogprobs![j - 1].logprob);
      });
    }
  });

  it('rejects rows of the wrong size and rows without a finite maximum', () => {
    const s = new Sampler({ temperature: 1 }, { vocabSize: 4 });
    expect(() => s.sample(new Float32Array(3))).toThrow(/vocabSize 4/);
    expect(() => s.sample(new Float32Array(4).fill(-Infinity))).toThrow(/finite maximum/);
  });
});
