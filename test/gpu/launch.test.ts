/**
 * A decode step whose bucket graph is captured starts on the JS thread (ModelRunner::launch,
 * called by the bindings before the worker is queued). Its errors still reject the step's
 * promise, never throw from forward(): host-side checks (a logit row outside the step) and
 * device-side ones (a token outside the vocabulary, found by the replayed graph). Afterwards
 * the engine goes on, its greedy ids equal to those of an engine that never graphs (padded
 * eager steps, MIXATTN_CUDA_GRAPHS=eager).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../lib/engine/engine.js';
import type { NativeModelHandle } from '../../lib/native.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { llamaLike, tokensOf } from '../reference/helpers.js';
import { makeEngine } from '../engine/harness.js';
import { TWIN, cudaAvailable } from './twin.js';

const saved = process.env.MIXATTN_CUDA_GRAPHS;
afterEach(() => {
  if (saved === undefined) delete process.env.MIXATTN_CUDA_GRAPHS;
  else process.env.MIXATTN_CUDA_GRAPHS = saved;
});

type Mode = 'on' | 'eager';
const setMode = (m: Mode) => (process.env.MIXATTN_CUDA_GRAPHS = m === 'on' ? '1' : 'eager');

describe.skipIf(!cudaAvailable)(`decode steps launched from the JS thread (${TWIN})`, () => {
  it('reject bad steps through the promise; later steps equal eager ones', async () => {
    const cfg = llamaLike(3, { vocabSize: 384, hiddenSize: 128, intermediateSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64 });
    const plan = presetPlan('ma', 3, { window: 8 });
    const opts = { seed: 9, dtype: 'bf16' as const, backend: TWIN, kvPages: 256 };
    const engines: Record<Mode, Engine> = { on: makeEngine(cfg, plan, opts), eager: makeEngine(cfg, plan, opts) };
    try {
      const seqs = { on: engines.on.addSequence(), eager: engines.eager.addSequence() };
      const prompt = tokensOf(29, cfg.vocabSize, 3);
      let next = -1;
      const decode = async (steps: number) => {
        for (let k = 0; k < steps; k++) {
          const ids = {} as Record<Mode, number>;
          for (const m of ['on', 'eager'] as const) {
            setMode(m);
            ids[m] = (await engines[m].step([{ seq: seqs[m], tokens: [next] }], { output: 'argmax' }))[0][0];
          }
          expect(ids.on, `decode step ${k}`).toBe(ids.eager);
          next = ids.on;
        }
      };
      for (const m of ['on', 'eager'] as const) {
        setMode(m);
        next = (await engines[m].step([{ seq: seqs[m], tokens: prompt }], { output: 'argmax' }))[0][0];
      }
      await decode(3); // the first decode step captures bucket 1; the others replay it

      setMode('on');
      const length = engines.on.blocks.length(seqs.on);
      await expect(engines.on.step([{ seq: seqs.on, tokens: [cfg.vocabSize + 5] }], { output: 'argmax' })).rejects.toThrow(
        new RegExp(`token id ${cfg.vocabSize + 5} at index 0`),
      );
      expect(engines.on.blocks.length(seqs.on)).toBe(length);

      // Host-side checks on the launch path: the native call itself (the engine never sends
      // such a step) must return a promise that rejects, and leave the model usable.
      const native = (engines.on as unknown as { native: NativeModelHandle }).native;
      const pastLen = Int32Array.of(length);
      const table = engines.on.layout.classes.map((c, ci) =>
        engines.on.blocks.table(seqs.on, ci).slice(0, Math.ceil((length + 1) / engines.on.layout.blockSize) * c.pagesPerBlock),
      );
      const step = {
        tokens: Int32Array.of(next),
        numNew: Int32Array.of(1),
        pastLen,
        tables: table,
        tableStrides: Int32Array.from(table, (t) => t.length),
        logitRows: Int32Array.of(1),
        output: 'argmax' as const,
      };
      let pending: Promise<Int32Array> | undefined;
      expect(() => (pending = native.forward(step))).not.toThrow();
      await expect(pending).rejects.toThrow(/logitRows\[0\] = 1 is not a row of this step/);

      await decode(3);
    } finally {
      engines.on.dispose();
      engines.eager.dispose();
    }
  });
});
