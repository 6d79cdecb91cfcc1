/**
 * Backend::sample on CUDA against its CPU twin: the same penalised logits bit for bit, the same
 * token ids (the rule's arithmetic is exact and shared), and the same logprobs up to the order
 * of the fp32/double sums (1e-5, relative beyond magnitude 1) — vocab 32000, 128256 and 50257
 * (not a multiple of 4: the unvectorised loads), batches of 1 to 64 rows, every parameter
 * combination. Then through the engine: Engine.stepSampled picks the tokens the host sampler
 * picks from Engine.step's logits, for the same seeds.
 *
 * MIXATTN_TWIN=cpu runs the same checks with the CPU on both sides (harness check without a
 * GPU); MIXATTN_SEED replays a draw.
 */
import { describe, expect, it } from 'vitest';
import type { StepEntry } from '../../lib/engine/engine.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { Sampler, type DeviceSampling, type Reduced } from '../../lib/sampling/index.js';
import { llamaLike, tokensOf } from '../reference/helpers.js';
import { makeEngine } from '../engine/harness.js';
import { deviceSample, randomLogits } from '../sampling/device-op.js';
import { Rng, SEED, TWIN, cudaAvailable, report } from './twin.js';

const NO_PENALTIES = new Int32Array(0);

/** Every combination of the knobs, off values included (216 policies), with a fresh uniform each. */
function allPolicies(V: number, rng: Rng): DeviceSampling[] {
  const out: DeviceSampling[] = [];
  for (const temperature of [0, 0.7, 1.5])
    for (const topK of [0, 1, 40, V - 1])
      for (const topP of [1, 0.9, 0.3])
        for (const minP of [0, 0.1])
          for (const pen of [0, 1, 2]) {
            const i = out.length;
            const ids = Array.from({ length: 3 + (i % 50) }, (_, j) => (j * 7919 + i * 31) % V);
            const pairs = [...new Set(ids)].flatMap((t, j) => [t, j % 3]);
            out.push({
              temperature,
              topK,
              topP,
              minP,
              uniform: rng.next(),
              logprobs: i % 2 === 0,
              topLogprobs: [0, 5, 20, 1][i % 4],
              repetitionPenalty: pen === 1 ? 1.3 : 1,
              presencePenalty: pen === 2 ? 0.5 : 0,
              frequencyPenalty: pen === 2 ? -0.4 : 0,
              penalties: pen === 0 ? NO_PENALTIES : Int32Array.from(pairs),
            });
          }
  return out;
}

/** Rows with ties (a coarse grid), -inf entries, a NaN, and plain normals, by row index. */
function logitsFor(rows: number, V: number, seed: number): Float32Array {
  const out = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) {
    const kind = r % 4;
    out.set(randomLogits(seed + r, V, { scale: [3, 2, 8, 1][kind], grid: kind === 1 ? 0.25 : 0, masked: kind === 2 ? 0.3 : 0, nan: kind === 3 }), r * V);
  }
  return out;
}

const LOGPROB_TOL = 1e-5;

/** Checks |a - b| / max(1, |b|) <= LOGPROB_TOL (-inf exactly); returns that error. */
function closeLogprob(a: number, b: number, what: string): number {
  if (!Number.isFinite(b)) {
    expect(a, what).toBe(b);
    return 0;
  }
  const err = Math.abs(a - b) / Math.max(1, Math.abs(b));
  expect(err, `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(LOGPROB_TOL);
  return err;
}

/** Same tokens and top ids, logprobs within LOGPROB_TOL; reports the worst logprob error. */
function expectSameRows(cuda: Reduced[], cpu: Reduced[], what: string): void {
  let worst = 0;
  const close = (a: number, b: number, w: string) => (worst = Math.max(worst, closeLogprob(a, b, w)));
  cuda.forEach((c, r) => {
    const h = cpu[r];
    expect(c.token, `${what} row ${r}: token`).toBe(h.token);
    if (Number.isNaN(h.logprob)) expect(c.logprob, `${what} row ${r}: logprob not asked for`).toBeNaN();
    else close(c.logprob, h.logprob, `${what} row ${r} logprob`);
    expect(c.topLogprobs.map((x) => x.token), `${what} row ${r}: top ids`).toEqual(h.topLogprobs.map((x) => x.token));
    c.topLogprobs.forEach((x, j) => close(x.logprob, h.topLogprobs[j].logprob, `${what} row ${r} top ${j}`));
  });
  report(`sample logprobs, ${what}`, worst, LOGPROB_TOL);
}

/** The first index where two float arrays differ in their bits (-1: none). */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

describe.skipIf(!cudaAvailable)(`Backend::sample (${TWIN}) vs the CPU twin, seed ${SEED}`, () => {
  for (const V of [32000, 128256, 50257]) {
    it(`vocab ${V}: all 216 policies in batches of 1 to 64 rows`, () => {
      const rng = new Rng(SEED ^ V);
      const policies = allPolicies(V, rng);
      let at = 0;
      let compared = 0;
      for (const rows of [1, 2, 7, 33, 64, 64, 45]) {
        const specs = Array.from({ length: rows }, (_, r) => policies[(at + r) % policies.length]);
        at += rows;
        const logits = logitsFor(rows, V, SEED + at);
        const cuda = deviceSample(TWIN, logits, V, specs);
        const cpu = deviceSample('cpu', logits, V, specs);
        const diff = firstBitDifference(cuda.penalised, cpu.penalised);
        expect(diff, `penalised logit ${diff}: ${cuda.penalised[diff]} vs ${cpu.penalised[diff]}`).toBe(-1);
        expectSameRows(cuda.results, cpu.results, `vocab ${V}, ${rows} rows`);
        compared += rows;
      }
      expect(compared).toBeGreaterThanOrEqual(policies.length);
    });
  }

  it('engine: stepSampled draws the tokens the host sampler draws from step()’s logits', async () => {
    const cfg = llamaLike(2, { vocabSize: 32000, hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, headDim: 16 });
    const plan = presetPlan('ma', 2, { window: 8 });
    const opts = { seed: 3, dtype: 'bf16' as const, backend: TWIN, kvPages: 256 };
    using byLogits = makeEngine(cfg, plan, opts);
    using onDevice = makeEngine(cfg, plan, opts);
    const params = [
      { temperature: 0.9, topK: 40, seed: 1, logprobs: true, topLogprobs: 3 },
      { temperature: 1.3, topP: 0.9, minP: 0.02, seed: 2, repetitionPenalty: 1.2, presencePenalty: 0.3 },
      { temperature: 0, seed: 3, logprobs: true, frequencyPenalty: 0.5 },
    ];
    const prompts = params.map((_, i) => tokensOf(5 + 3 * i, cfg.vocabSize, i));
    const host = params.map((p, i) => new Sampler(p, { vocabSize: cfg.vocabSize, promptIds: prompts[i] }));
    const dev = params.map((p, i) => new Sampler(p, { vocabSize: cfg.vocabSize, promptIds: prompts[i] }));
    const a = params.map(() => byLogits.addSequence());
    const b = params.map(() => onDevice.addSequence());
    let next = prompts;
    for (let step = 0; step < 12; step++) {
      const entries = (seqs: number[]): StepEntry[] => seqs.map((seq, i) => ({ seq, tokens: next[i] }));
      const logits = await byLogits.step(entries(a));
      const sampled = await onDevice.stepSampled(entries(b), dev.map((s) => s.deviceSampling()));
      const hostTokens = logits.map((row, i) => host[i].sample(row));
      const devTokens = sampled.map((r, i) => dev[i].accept(r));
      expect(devTokens.map((t) => t.token), `step ${step}`).toEqual(hostTokens.map((t) => t.token));
      devTokens.forEach((t, i) => {
        if (t.logprob !== undefined) closeLogprob(t.logprob, hostTokens[i].logprob!, `engine step ${step} seq ${i}`);
      });
      next = devTokens.map((t) => [t.token]);
    }
  });
});
