/**
 * Engine.step's `output: 'argmax'` (Backend::argmax on the backend, only token ids back):
 * the ids equal the host argmax of the same step's logits, for ragged batches mixing prefill
 * chunks ('last' and 'all' rows) and decode tokens; greedyGenerate (which uses it) gives the
 * tokens of a host-argmax greedy loop over the logits.
 */
import { describe, expect, it } from 'vitest';
import type { Engine, StepEntry } from '../../lib/engine/engine.js';
import { argmax, greedyGenerate } from '../../lib/engine/greedy.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { llamaLike, tokensOf } from '../reference/helpers.js';
import { makeEngine } from './harness.js';

/** The greedy loop as it was before device argmax: logits to the host, argmax there. */
async function hostGreedy(engine: Engine, prompts: number[][], maxNewTokens: number, chunk: number): Promise<number[][]> {
  const seqs = prompts.map(() => engine.addSequence());
  const out: number[][] = prompts.map(() => []);
  try {
    const offsets = prompts.map(() => 0);
    const next = prompts.map(() => -1);
    for (;;) {
      const idx = prompts.map((_, i) => i).filter((i) => offsets[i] < prompts[i].length);
      if (idx.length === 0) break;
      const entries = idx.map((i) => {
        const end = Math.min(prompts[i].length, offsets[i] + chunk);
        const e = { seq: seqs[i], tokens: prompts[i].slice(offsets[i], end) };
        offsets[i] = end;
        return e;
      });
      const logits = await engine.step(entries);
      idx.forEach((i, j) => {
        if (offsets[i] === prompts[i].length) next[i] = argmax(logits[j]);
      });
    }
    for (let t = 0; t < maxNewTokens; t++) {
      prompts.forEach((_, i) => out[i].push(next[i]));
      if (t + 1 === maxNewTokens) break;
      const logits = await engine.step(prompts.map((_, i) => ({ seq: seqs[i], tokens: [next[i]] })));
      prompts.forEach((_, i) => (next[i] = argmax(logits[i])));
    }
  } finally {
    for (const s of seqs) engine.releaseSequence(s);
  }
  return out;
}

describe("Engine.step output: 'argmax'", () => {
  const cfg = llamaLike(13);

  for (const dtype of ['f32', 'bf16'] as const) {
    it(`ids equal the host argmax of the logits on ragged batches (${dtype} weights)`, async () => {
      const plan = presetPlan('ma', cfg.numLayers, { window: 8 });
      using a = makeEngine(cfg, plan, { seed: 3, dtype });
      using b = makeEngine(cfg, plan, { seed: 3, dtype });
      const prompts = [tokensOf(19, cfg.vocabSize, 1), tokensOf(5, cfg.vocabSize, 2), tokensOf(1, cfg.vocabSize, 3), tokensOf(33, cfg.vocabSize, 4)];
      const sa = prompts.map(() => a.addSequence());
      const sb = prompts.map(() => b.addSequence());
      // Step 1: ragged prefill, 'all' rows for some entries; then mixed prefill + decode steps.
      const schedule: { take: number[]; rows: ('last' | 'all')[] }[] = [
        { take: [7, 5, 1, 16], rows: ['all', 'last', 'all', 'last'] },
        { take: [12, 1, 1, 17], rows: ['last', 'last', 'all', 'all'] },
        { take: [1, 1, 1, 1], rows: ['last', 'last', 'last', 'last'] },
      ];
      const fed = prompts.map(() => 0);
      let compared = 0;
      for (const { take, rows } of schedule) {
        const entries = (seqs: number[]): StepEntry[] =>
          prompts.map((p, i) => ({
            seq: seqs[i],
            tokens: Array.from({ length: take[i] }, (_, j) => p[(fed[i] + j) % p.length]),
            logits: rows[i],
          }));
        const ids = await a.step(entries(sa), { output: 'argmax' });
        const logits = await b.step(entries(sb));
        prompts.forEach((_, i) => {
          const n = rows[i] === 'all' ? take[i] : 1;
          expect(ids[i]).toBeInstanceOf(Int32Array);
          expect(ids[i]).toHaveLength(n);
          const V = cfg.vocabSize;
          const want = Array.from({ length: n }, (_, r) => argmax(logits[i].subarray(r * V, (r + 1) * V)));
          expect(Array.from(ids[i])).toEqual(want);
          compared += n;
          fed[i] += take[i];
        });
      }
      expect(compared).toBe(34);
      // Both engines hold the same KV state: the argmax step committed its tokens like a logits step.
      expect(a.blocks.usedPages).toBe(b.blocks.usedPages);
    });
  }

  it('rejects an unknown output mode', async () => {
    using e = makeEngine(cfg, presetPlan('standard', cfg.numLayers), { seed: 1 });
    const seq = e.addSequence();
    await expect(e.step([{ seq, tokens: [1] }], { output: 'probs' as 'argmax' })).rejects.toThrow(/output/);
  });

  it('greedyGenerate (device argmax) gives the tokens of a host-argmax greedy loop', async () => {
    for (const spec of ['standard', 'ma-pairs'] as const) {
      const plan = presetPlan(spec, cfg.numLayers, { window: 8 });
      using e = makeEngine(cfg, plan, { seed: 5, dtype: 'bf16' });
      const prompts = [tokensOf(21, cfg.vocabSize, 11), tokensOf(3, cfg.vocabSize, 12), tokensOf(40, cfg.vocabSize, 13)];
      const want = await hostGreedy(e, prompts, 12, 9);
      const got = await greedyGenerate(e, prompts, { maxNewTokens: 12, prefillChunk: 9 });
      expect(got.tokens).toEqual(want);
      expect(got.decodeTokens).toBe(prompts.length * 11);
      expect(e.blocks.usedPages).toBe(0);
    }
  });
});
