/**
 * Decode steps replayed as CUDA graphs (one per batch-size bucket, MIXATTN_CUDA_GRAPHS) compute
 * exactly what the same padded steps compute when launched op by op ("eager"): bit-identical
 * logits and argmax ids, for batches that cross buckets, ragged contexts, sliding windows (ma
 * preset), sequences joining and leaving. Against unpadded steps (graphs "off") the numbers
 * agree to bf16 rounding (a padded batch may pick other GEMM algorithms and KV split counts).
 * Three engines with the same weights are fed the same steps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine, StepEntry } from '../../lib/engine/engine.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { llamaLike, tokensOf } from '../reference/helpers.js';
import { makeEngine } from '../engine/harness.js';
import { TWIN, cudaAvailable } from './twin.js';

const saved = process.env.MIXATTN_CUDA_GRAPHS;
afterEach(() => {
  if (saved === undefined) delete process.env.MIXATTN_CUDA_GRAPHS;
  else process.env.MIXATTN_CUDA_GRAPHS = saved;
});

type Mode = 'on' | 'eager' | 'off';
const MODES: Mode[] = ['on', 'eager', 'off'];

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

describe.skipIf(!cudaAvailable)(`decode graphs (${TWIN})`, () => {
  it('graph replays equal eager padded steps bit for bit; unpadded steps to bf16 rounding', async () => {
    const cfg = llamaLike(4, { vocabSize: 512, hiddenSize: 128, intermediateSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64 });
    const plan = presetPlan('ma', 4, { window: 8 });
    const opts = { seed: 5, dtype: 'bf16' as const, backend: TWIN, kvPages: 2048 };
    const engines = {} as Record<Mode, Engine>;
    for (const m of MODES) engines[m] = makeEngine(cfg, plan, opts);
    try {
      // live[i] = the i-th live sequence's id in each engine
      let live: Record<Mode, number>[] = [];
      let next: number[] = [];  // the token each live sequence decodes next
      let salt = 0;
      let decodeSteps = 0;
      const join = async (lengths: number[]) => {
        const fresh = lengths.map(() => ({ on: engines.on.addSequence(), eager: engines.eager.addSequence(), off: engines.off.addSequence() }));
        const prompts = lengths.map((n) => tokensOf(n, cfg.vocabSize, ++salt));
        const out = {} as Record<Mode, Int32Array[]>;
        for (const m of MODES) {
          process.env.MIXATTN_CUDA_GRAPHS = m === 'on' ? '1' : m === 'eager' ? 'eager' : '0';
          out[m] = await engines[m].step(fresh.map((s, i) => ({ seq: s[m], tokens: prompts[i] })), { output: 'argmax' });
        }
        // prefill steps are never padded: the same path in every mode
        expect(out.eager).toEqual(out.on);
        expect(out.off).toEqual(out.on);
        live = live.concat(fresh);
        next = next.concat(out.on.map((ids) => ids[0]));
      };
      const leave = (indices: number[]) => {
        const drop = new Set(indices);
        for (const i of drop) for (const m of MODES) engines[m].releaseSequence(live[i][m]);
        live = live.filter((_, i) => !drop.has(i));
        next = next.filter((_, i) => !drop.has(i));
      };
      const decode = async (n: number) => {
        for (let k = 0; k < n; k++) {
          const output = k % 2 ? 'argmax' : 'logits';
          const tokens = next.slice();
          const res = {} as Record<Mode, Float32Array[] | Int32Array[]>;
          for (const m of MODES) {
            process.env.MIXATTN_CUDA_GRAPHS = m === 'on' ? '1' : m === 'eager' ? 'eager' : '0';
            const entries = live.map((s, i) => ({ seq: s[m], tokens: [tokens[i]] }));
            res[m] = output === 'argmax' ? await engines[m].step(entries, { output: 'argmax' }) : await engines[m].step(entries);
          }
          expect(res.on).toHaveLength(live.length);
          for (let i = 0; i < live.length; i++) {
            const a = res.on[i], b = res.eager[i], c = res.off[i];
            if (output === 'argmax') {
              expect(Array.from(a), `step ${decodeSteps} seq ${i}`).toEqual(Array.from(b));
              next[i] = a[0];
            } else {
              const fa = a as Float32Array, fb = b as Float32Array;
              expect(Buffer.compare(Buffer.from(fa.buffer, fa.byteOffset, fa.byteLength), Buffer.from(fb.buffer, fb.byteOffset, fb.byteLength)), `step ${decodeSteps} seq ${i}`).toBe(0);
              expect(relErr(fa, c as Float32Array)).toBeLessThan(3e-2);
              let best = 0;
              for (let v = 1; v < fa.length; v++) if (fa[v] > fa[best]) best = v;
              next[i] = best;
            }
          }
          decodeSteps++;
        }
      };
      await join([37, 5, 130, 1, 300]);
      await decode(4); // bucket 8 (5 rows)
      await join([18, 64, 9, 200]);
      await decode(3); // bucket 16 (9 rows)
      leave([0, 2, 3, 4, 5, 6, 7, 8]);
      await decode(3); // bucket 1
      await join([16, 17]);
      await decode(3); // bucket 4 (3 rows)
      await join(Array.from({ length: 15 }, (_, i) => 3 + 11 * i));
      await decode(3); // bucket 32 (18 rows)
      leave([1, 5, 9, 13]);
      await decode(2); // bucket 16 (14 rows)
      expect(decodeSteps).toBe(18);
    } finally {
      for (const m of MODES) engines[m].dispose();
    }
  });
});
