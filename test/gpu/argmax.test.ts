/**
 * Device argmax on the CUDA engine: Engine.step's `output: 'argmax'` returns exactly the host
 * argmax of the logits that the same steps produce in logits mode (two engines with the same
 * weights fed the same ragged steps, so the logits are bit-identical).
 */
import { describe, expect, it } from 'vitest';
import type { StepEntry } from '../../lib/engine/engine.js';
import { argmax } from '../../lib/engine/greedy.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { llamaLike, tokensOf } from '../reference/helpers.js';
import { makeEngine } from '../engine/harness.js';
import { TWIN, cudaAvailable } from './twin.js';

describe.skipIf(!cudaAvailable)(`device argmax (${TWIN})`, () => {
  it('ids equal the argmax of the logits for ragged prefill and decode steps', async () => {
    const cfg = llamaLike(6, { vocabSize: 1000, hiddenSize: 64, intermediateSize: 128, numHeads: 4, numKvHeads: 2, headDim: 16 });
    const plan = presetPlan('ma', 6, { window: 8 });
    const opts = { seed: 3, dtype: 'bf16' as const, backend: TWIN, kvPages: 128 };
    using byLogits = makeEngine(cfg, plan, opts);
    using byIds = makeEngine(cfg, plan, opts);
    const steps = [
      [17, 5, 1],
      [3, 1, 9],
      [1, 1, 1],
    ];
    const a = [0, 1, 2].map(() => byLogits.addSequence());
    const b = [0, 1, 2].map(() => byIds.addSequence());
    let compared = 0;
    for (const [k, sizes] of steps.entries()) {
      const entries = (seqs: number[]): StepEntry[] =>
        sizes.map((n, i) => ({ seq: seqs[i], tokens: tokensOf(n, cfg.vocabSize, k * 3 + i), logits: i === 0 ? 'all' : 'last' }));
      const logits = await byLogits.step(entries(a));
      const ids = await byIds.step(entries(b), { output: 'argmax' });
      logits.forEach((rows, i) => {
        const n = rows.length / cfg.vocabSize;
        expect(ids[i]).toHaveLength(n);
        for (let r = 0; r < n; r++) expect(ids[i][r]).toBe(argmax(rows.subarray(r * cfg.vocabSize, (r + 1) * cfg.vocabSize)));
        compared += n;
      });
    }
    expect(compared).toBe(17 + 1 + 1 + 3 + 1 + 1 + 1 + 1 + 1);
  });
});
