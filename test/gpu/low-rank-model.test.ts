/**
 * Low-rank K/V models (Eigen Attention) on the GPU: the CUDA engine against the CPU engine with
 * the same bf16 weights (bound: test/gpu/model.test.ts's, 2 × PyTorch's own bf16 error on
 * whole models), owners at mixed ranks (multiples of 8, full width, values only, keys only)
 * under several presets, fed whole, in chunks and token by token; and decode steps replayed
 * as CUDA graphs equal the same padded steps run eagerly, bit for bit.
 *
 * MIXATTN_TWIN=cpu runs it with the CPU on both sides (checks the harness without a GPU).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { withKvRank } from '../../lib/plan/ranks.js';
import type { KvRank, LayerPlan } from '../../lib/plan/types.js';
import { makeEngine } from '../engine/harness.js';
import { twinVsCpu, tokens } from './engine-compare.js';
import { SEED, TWIN, bound, cudaAvailable, expectWithin } from './twin.js';

const saved = process.env.MIXATTN_CUDA_GRAPHS;
afterEach(() => {
  if (saved === undefined) delete process.env.MIXATTN_CUDA_GRAPHS;
  else process.env.MIXATTN_CUDA_GRAPHS = saved;
});

/** Owners take the ranks in turn. */
function ranked(preset: string, cfg: ModelConfig, window: number, ranks: (KvRank | undefined)[]): LayerPlan {
  const plan = presetPlan(preset, cfg.numLayers, { window });
  const owners = plan.layers.flatMap((l, i) => (l.kvSource === i ? [i] : []));
  return withKvRank(plan, (o) => ranks[owners.indexOf(o) % ranks.length]);
}


describe.skipIf(!cudaAvailable)(`low-rank K/V models: CUDA engine vs CPU engine (${TWIN}, seed ${SEED})`, () => {
  const d64 = llamaConfig({ vocabSize: 512, hiddenSize: 256, intermediateSize: 688, numLayers: 6, numHeads: 8, numKvHeads: 2, headDim: 64 });
  const mix64: (KvRank | undefined)[] = [{ k: 24, v: 40 }, { k: 64, v: 16 }, undefined, { k: 8, v: 64 }, { k: 48, v: 8 }];
  for (const preset of ['standard', 'ma', 'ma-pairs', 'characterai', 'sliding']) {
    it(`d64 GQA 8:2, ${preset}, window 24, mixed ranks`, async () => {
      const prompts = [tokens(70, 512, 1), tokens(45, 512, 2), tokens(9, 512, 3)];
      const err = await twinVsCpu(d64, ranked(preset, d64, 24, mix64), prompts, ['whole', { chunk: 16 }, 'decode']);
      expectWithin(`low-rank model ${preset}`, err, bound('model'));
    });
  }

  it('d128 MQA 4:1, ma, every owner at k32v48, chunked and token by token', async () => {
    const cfg = llamaConfig({ vocabSize: 300, hiddenSize: 512, intermediateSize: 1024, numLayers: 6, numHeads: 4, numKvHeads: 1, headDim: 128 });
    const err = await twinVsCpu(cfg, ranked('ma', cfg, 40, [{ k: 32, v: 48 }]), [tokens(100, 300, 4), tokens(33, 300, 5)], [{ pattern: [37, 1, 20] }, 'decode']);
    expectWithin('low-rank model d128 ma', err, bound('model'));
  });

  it('decode graphs replay what the padded steps compute eagerly, bit for bit', async () => {
    const plan = ranked('ma', d64, 8, mix64);
    const opts = { seed: 5, dtype: 'bf16' as const, backend: TWIN, kvPages: 1024 };
    using on = makeEngine(d64, plan, opts);
    using eager = makeEngine(d64, plan, opts);
    const lengths = [37, 5, 130, 1, 300];
    const seqs = lengths.map(() => ({ on: on.addSequence(), eager: eager.addSequence() }));
    let next: number[] = [];
    for (const [mode, engine] of [['1', on], ['eager', eager]] as const) {
      process.env.MIXATTN_CUDA_GRAPHS = mode;
      const ids = await engine.step(seqs.map((s, i) => ({ seq: mode === '1' ? s.on : s.eager, tokens: tokens(lengths[i], 512, i) })), { output: 'argmax' });
      next = ids.map((x) => x[0]);
    }
    for (let step = 0; step < 5; step++) {
      process.env.MIXATTN_CUDA_GRAPHS = '1';
      const a = await on.step(seqs.map((s, i) => ({ seq: s.on, tokens: [next[i]] })));
      process.env.MIXATTN_CUDA_GRAPHS = 'eager';
      const b = await eager.step(seqs.map((s, i) => ({ seq: s.eager, tokens: [next[i]] })));
      for (let i = 0; i < seqs.length; i++) {
        expect(Buffer.compare(Buffer.from(a[i].buffer, a[i].byteOffset, a[i].byteLength), Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength)), `step ${step} seq ${i}`).toBe(0);
        let best = 0;
        for (let v = 1; v < a[i].length; v++) if (a[i][v] > a[i][best]) best = v;
        next[i] = best;
      }
    }
  });
});
