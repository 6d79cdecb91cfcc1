/**
 * The sampling benchmark's case as a test: a batch of 16 rows at vocab 128256, each row its own
 * Sampler mid-generation (a distinct prompt and generated tokens, so distinct penalty lists),
 * the policy top-p + min-p + penalties + logprobs, several steps through Backend::sample's CPU
 * twin and through the TypeScript Sampler per row. The op is also asked to time extra steps
 * (`repeat`, as bench/sampling.mjs does), which penalise the logits again in place: its
 * results must still be those of the step it was given.
 */
import { describe, expect, it } from 'vitest';
import { Prng } from '../../lib/model/prng.js';
import { CpuReducer, Sampler, applyPenalties, penaltiesOf, type SamplingParams } from '../../lib/sampling/index.js';
import { deviceSample, expectSame, randomLogits } from './device-op.js';

const V = 128256;
const ROWS = 16;
const POLICY: SamplingParams = { temperature: 1, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.3, frequencyPenalty: 0.2, logprobs: true, topLogprobs: 5 };

/** The row's `n` largest logits' ids (its likely picks), so its penalties reach the kept set. */
function topIds(row: Float32Array, n: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < row.length; i++) {
    if (top.length === n && row[i] <= row[top[n - 1]]) continue;
    if (top.length === n) top.pop();
    let j = top.length;
    while (j > 0 && row[top[j - 1]] < row[i]) j--;
    top.splice(j, 0, i);
  }
  return top;
}

/** Two samplers per row with the same state: 300 random prompt tokens plus the row's top picks, 40 generated. */
function samplerPairs(first: Float32Array, reducer: CpuReducer): [Sampler, Sampler][] {
  return Array.from({ length: ROWS }, (_, r) => {
    const row = first.subarray(r * V, (r + 1) * V);
    const make = () => {
      const rng = new Prng(40 + r);
      const promptIds = [...Array.from({ length: 300 }, () => Math.floor(rng.uniform() * V)), ...topIds(row, 4)];
      const s = new Sampler({ ...POLICY, seed: 40 + r }, { vocabSize: V, promptIds, reducer });
      for (let i = 0; i < 40; i++) s.history.push(Math.floor(rng.uniform() * V));
      return s;
    };
    return [make(), make()];
  });
}

describe('Backend::sample (CPU twin) = Sampler per row, a batch with penalties and distinct histories', () => {
  it('the same penalised logits, tokens and logprobs per row over 3 steps, with and without timed repeats', () => {
    const reducer = new CpuReducer(V);
    const steps = [0, 2, 0].map((repeat, s) => ({ repeat, logits: randomLogits(900 + s, ROWS * V, { scale: 3 }) }));
    const pairs = samplerPairs(steps[0].logits, reducer);
    const pen = penaltiesOf(pairs[0][1].params)!;
    const histories = new Set(pairs.map(([, dev]) => dev.history.pairs().join(',')));
    expect(histories.size, 'every row has its own penalty list').toBe(ROWS);
    let recompoundedDiffers = 0;
    for (const [s, { repeat, logits }] of steps.entries()) {
      const given = Buffer.from(logits.slice().buffer);
      const specs = pairs.map(([, dev]) => dev.deviceSampling());
      const expectPenalised = logits.slice();
      pairs.forEach(([, dev], r) => applyPenalties(expectPenalised.subarray(r * V, (r + 1) * V), dev.history, pen));
      const out = deviceSample('cpu', logits, V, specs, repeat);
      expect(Buffer.from(logits.buffer).equals(given), `step ${s}: the caller logits are not touched`).toBe(true);
      expect(Buffer.from(out.penalised.buffer).equals(Buffer.from(expectPenalised.buffer)), `step ${s}: penalised logits, bit for bit`).toBe(true);
      // What a later step would pick: the same rows penalised once more. It must differ on some
      // row, or this test could not tell the given step's results from a repeated step's.
      const again = deviceSample('cpu', out.penalised, V, specs);
      recompoundedDiffers += again.results.filter((x, r) => x.token !== out.results[r].token).length;
      pairs.forEach(([host, dev], r) => {
        const hostResult = host.sample(logits.subarray(r * V, (r + 1) * V));
        expectSame(dev.accept(out.results[r]), hostResult, `step ${s} (repeat ${repeat}) row ${r}`);
      });
    }
    expect(recompoundedDiffers).toBeGreaterThan(0);
  });
});
