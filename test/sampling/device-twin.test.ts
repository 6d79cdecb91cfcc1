/**
 * Backend::sample's CPU twin against the TypeScript sampler (lib/sampling): for the same
 * logits, policy and seed, the same penalised logits bit for bit, the same token, and the same
 * logprobs to fp32 rounding — over random rows (ties, -inf, NaN) and every parameter combo.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuReducer, Sampler, applyPenalties, penaltiesOf, type SampleResult } from '../../lib/sampling/index.js';
import { expWeight, integerWeight, invTemperature, scaledLogit } from '../../lib/sampling/weights.js';
import { deviceSample, expectSame, logitsArb, policyArb, randomLogits, type PolicyDraw } from './device-op.js';

/** Runs `steps` tokens of one policy through both paths; returns how many tokens were compared. */
function compareRun(vocab: number, policy: PolicyDraw, rows: Float32Array, promptIds: number[]): number {
  const steps = rows.length / vocab;
  const [host, dev] = makePair(vocab, policy, promptIds);
  const pen = penaltiesOf(dev.params);
  for (let s = 0; s < steps; s++) {
    const row = rows.slice(s * vocab, (s + 1) * vocab);
    const spec = dev.deviceSampling();
    const expectPenalised = row.slice();
    if (pen) applyPenalties(expectPenalised, dev.history, pen);
    const out = deviceSample('cpu', row, vocab, [spec]);
    expect(bitsOf(out.penalised)).toEqual(bitsOf(expectPenalised));
    let hostResult: SampleResult | Error;
    try {
      hostResult = host.sample(row);
    } catch (e) {
      hostResult = e as Error;
    }
    if (hostResult instanceof Error) {
      expect(hostResult.message).toMatch(/no finite maximum/);
      expect(out.results[0].token).toBe(-1);
      expect(() => dev.accept(out.results[0])).toThrow(/no finite maximum/);
      return s;
    }
    expectSame(dev.accept(out.results[0]), hostResult, `step ${s}`);
  }
  return steps;
}

function makePair(vocab: number, p: PolicyDraw, promptIds: number[]) {
  return [new Sampler(p, { vocabSize: vocab, promptIds }), new Sampler(p, { vocabSize: vocab, promptIds })] as const;
}

const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('Backend::sample (CPU twin) = lib/sampling', () => {
  it('random rows, every parameter combination: same penalised logits, tokens and logprobs', () => {
    let compared = 0;
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 3000 })
          .chain((V) => fc.tuple(fc.constant(V), policyArb(V), logitsArb(V, 4), fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 40 }))),
        ([V, policy, rows, prompt]) => {
          compared += compareRun(V, policy, rows, prompt);
        },
      ),
      { numRuns: 250 },
    );
    expect(compared).toBeGreaterThan(500);
  });

  it('large vocabularies (32000, 128256) with the usual policies', () => {
    for (const V of [32000, 128256]) {
      const policies = [
        { temperature: 0.7, topK: 50, topP: 0.9, minP: 0, repetitionPenalty: 1.1, presencePenalty: 0, frequencyPenalty: 0, logprobs: true, topLogprobs: 5, seed: 1 },
        { temperature: 1, topK: 0, topP: 0.95, minP: 0.05, repetitionPenalty: 1, presencePenalty: 0.4, frequencyPenalty: 0.2, logprobs: true, topLogprobs: 0, seed: 2 },
        { temperature: 1.3, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, logprobs: false, topLogprobs: 20, seed: 3 },
        { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1.3, presencePenalty: 0, frequencyPenalty: 0, logprobs: true, topLogprobs: 3, seed: 4 },
      ];
      for (const [k, p] of policies.entries()) {
        const rows = randomLogits(V + k, 3 * V, { scale: 3 });
        expect(compareRun(V, p, rows, [5, 17, 17, V - 1, 1000])).toBe(3);
      }
    }
  });

  it('a batch of rows with different policies and penalty lists matches row by row', () => {
    const V = 777;
    const policies = Array.from({ length: 9 }, (_, i) => ({
      temperature: [0, 0.5, 1, 2][i % 4],
      topK: [0, 3, 100][i % 3],
      topP: [1, 0.8, 0.3][i % 3],
      minP: [0, 0.1][i % 2],
      repetitionPenalty: [1, 1.5][i % 2],
      presencePenalty: [0, 0.3, -0.3][i % 3],
      frequencyPenalty: [0, 0.5][i % 2],
      logprobs: i % 2 === 0,
      topLogprobs: i % 5,
      seed: 100 + i,
    }));
    const samplers = policies.map((p, i) => makePair(V, p, [i, i + 1, 2 * i, 700]));
    for (let step = 0; step < 4; step++) {
      const logits = randomLogits(step + 1, V * policies.length, { scale: 2.5, grid: step === 2 ? 0.5 : 0 });
      const specs = samplers.map(([, dev]) => dev.deviceSampling());
      const out = deviceSample('cpu', logits, V, specs);
      samplers.forEach(([host, dev], r) => {
        const hostResult = host.sample(logits.slice(r * V, (r + 1) * V));
        expectSame(dev.accept(out.results[r]), hostResult, `step ${step} row ${r}`);
      });
    }
  });

  it('rejects bad rows naming the row and the field, before touching the logits', () => {
    const V = 10;
    const ok = new Sampler({ temperature: 1, seed: 1 }, { vocabSize: V }).deviceSampling();
    const logits = randomLogits(1, 2 * V, { scale: 1 });
    expect(() => deviceSample('cpu', logits, V, [ok, { ...ok, topP: 0 }])).toThrow(/rows\[1\]\.topP = 0 must be in \(0, 1\]/);
    expect(() => deviceSample('cpu', logits, V, [{ ...ok, uniform: 1 }, ok])).toThrow(/rows\[0\]\.uniform = 1 must be in \[0, 1\)/);
    expect(() => deviceSample('cpu', logits, V, [ok, { ...ok, penalties: Int32Array.of(3, 1, 3, 2) }])).toThrow(/rows\[1\]\.penalties\[1\]: token id 3 appears twice/);
    expect(() => deviceSample('cpu', logits, V, [ok, { ...ok, penalties: Int32Array.of(10, 1) }])).toThrow(/rows\[1\]\.penalties\[0\]: token id 10 is outside \[0, 10\)/);
    expect(() => deviceSample('cpu', logits, V, [{ ...ok, topK: 1.5 }, ok])).toThrow(/row 0: topK must be a non-negative integer/);
    expect(() => deviceSample('cpu', logits, V, [{ ...ok, topLogprobs: 21 }, ok])).toThrow(/rows\[0\]\.topLogprobs = 21/);
  });
});

describe('the draw at the mass boundaries (u picking each exact cumulative sum)', () => {
  it('t = running sum before token j draws j, one less draws the previous kept token', () => {
    const V = 12;
    const row = Float32Array.from([0.5, 2, 2, -1, 0.5, 3, -Infinity, 2, 1.25, 0.5, -3, 3]);
    const T = 0.8;
    const invT = invTemperature(Math.fround(T));
    const q = Array.from(row, (y) => (y > -Infinity ? integerWeight(expWeight(scaledLogit(y, 3, invT))) : 0));
    const S = q.reduce((a, b) => a + b, 0);
    const reducer = new CpuReducer(V);
    const uOf = (t: number) => {
      let u = t / S;
      while (Math.floor(u * S) > t) u -= Number.EPSILON * u;
      while (Math.floor(u * S) < t) u += Number.EPSILON * u;
      return u;
    };
    let before = 0;
    let prev = -1;
    for (let j = 0; j < V; j++) {
      if (q[j] === 0) continue;
      for (const [t, want] of [[before, j], [before - 1, prev]] as const) {
        if (t < 0) continue;
        const spec = { temperature: T, topK: 0, topP: 1, minP: 0, uniform: uOf(t), logprobs: false, topLogprobs: 0 };
        expect(Math.floor(spec.uniform * S)).toBe(t);
        expect(reducer.reduce(row, spec).token, `t = ${t}`).toBe(want);
        const dev = deviceSample('cpu', row, V, [{ ...spec, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, penalties: new Int32Array(0) }]);
        expect(dev.results[0].token, `device, t = ${t}`).toBe(want);
      }
      before += q[j];
      prev = j;
    }
  });
});
