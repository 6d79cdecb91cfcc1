/**
 * Bad input gets one clear error naming what was wrong, and the engine stays usable:
 * no crash, no half-built model, no leaked KV blocks.
 */
import { describe, expect, it } from 'vitest';
import { Engine } from '../../lib/engine/engine.js';
import { KvCacheFullError } from '../../lib/kv/block-manager.js';
import { randomWeights, weightMap } from '../../lib/model/random-weights.js';
import { nativeModelDesc } from '../../lib/engine/native-desc.js';
import { kvLayout } from '../../lib/kv/layout.js';
import { loadAddon } from '../../lib/native.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { referenceForward } from '../reference/transformer64.js';
import { llamaLike, relDiff, tokensOf } from '../reference/helpers.js';
import { engineLogits, makeEngine } from './harness.js';

const cfg = llamaLike(4);
const plan = presetPlan('ma', 4, { window: 3 });

describe('engine errors', () => {
  it('rejects an invalid plan naming the layer', () => {
    const bad = { name: 'bad', layers: [...plan.layers.slice(0, 3), { attention: { kind: 'global' as const }, kvSource: 1 }] };
    expect(() => Engine.create(cfg, bad, [], { kvPages: 8 })).toThrow(/layer 3/);
  });

  it('rejects weights of the wrong shape, missing or unknown, naming the weight', () => {
    const w = randomWeights(cfg, plan, { seed: 1, dtype: 'f32' });
    const wrong = w.map((t) => (t.name === 'layers.2.q_proj' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t));
    expect(() => Engine.create(cfg, plan, wrong, { kvPages: 8 })).toThrow(/'layers\.2\.q_proj' has shape \[24, 32\], expected \[32, 24\]/);
    const missing = w.filter((t) => t.name !== 'layers.1.up_proj');
    expect(() => Engine.create(cfg, plan, missing, { kvPages: 8 })).toThrow(/missing: layers\.1\.up_proj/);
    const truncated = w.map((t) => (t.name === 'final_norm' ? { ...t, bytes: t.bytes.subarray(4) } : t));
    expect(() => Engine.create(cfg, plan, truncated, { kvPages: 8 })).toThrow(/'final_norm' has 92 bytes, expected 96/);
    // A reader layer has no K projection of its own.
    const extra = [...w, { ...w[0], name: 'layers.2.k_proj' }];
    expect(() => Engine.create(cfg, plan, extra, { kvPages: 8 })).toThrow(/'layers\.2\.k_proj' is not part of this model/);
  });

  it('rejects unknown backends and explains why cuda is unavailable', () => {
    const w = randomWeights(cfg, plan, { seed: 1, dtype: 'f32' });
    expect(() => Engine.create(cfg, plan, w, { backend: 'tpu' as 'cpu', kvPages: 8 })).toThrow(/backend 'tpu' is unknown/);
    if (!loadAddon().backendInfo().cuda.available) {
      expect(() => Engine.create(cfg, plan, w, { backend: 'cuda', kvPages: 8 })).toThrow(/backend 'cuda' is not available: /);
    }
  });

  it('a token outside the vocabulary fails the step; the engine and its pool stay usable', async () => {
    using engine = makeEngine(cfg, plan, { kvPages: 32 });
    const seq = engine.addSequence();
    await expect(engine.step([{ seq, tokens: [1, 2, cfg.vocabSize] }])).rejects.toThrow(/token id 41 at index 2/);
    expect(engine.blocks.length(seq)).toBe(0);
    engine.releaseSequence(seq);
    expect(engine.blocks.usedPages).toBe(0);
    const toks = tokensOf(9, cfg.vocabSize);
    const [got] = await engineLogits(engine, [toks], [{ chunk: 4 }]);
    const ref = referenceForward(cfg, plan, weightMap(randomWeights(cfg, plan, { seed: 1, dtype: 'f32' })), toks);
    expect(relDiff(got, ref)).toBeLessThan(1e-4);
  });

  it('an exhausted pool is a KvCacheFullError that changes nothing', async () => {
    using engine = makeEngine(cfg, plan, { kvPages: 6 });
    const a = engine.addSequence();
    const b = engine.addSequence();
    await engine.step([{ seq: a, tokens: tokensOf(16, cfg.vocabSize) }]);
    const used = engine.blocks.usedPages;
    const err = await engine.step([{ seq: b, tokens: tokensOf(40, cfg.vocabSize) }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvCacheFullError);
    expect((err as Error).message).toMatch(/needs \d+ more pages but \d+ of 6 are free/);
    expect(engine.blocks.usedPages).toBe(used);
    expect(engine.blocks.length(b)).toBe(0);
    await engine.step([{ seq: a, tokens: [3] }]);
    engine.releaseSequence(a);
    engine.releaseSequence(b);
    expect(engine.blocks.usedPages).toBe(0);
  });

  it('rejects malformed steps and steps on a disposed engine', async () => {
    const engine = makeEngine(cfg, plan, { kvPages: 8 });
    const s = engine.addSequence();
    await expect(engine.step([])).rejects.toThrow(/no entries/);
    await expect(engine.step([{ seq: s, tokens: [] }])).rejects.toThrow(/entries\[0\]\.tokens is empty/);
    await expect(engine.step([{ seq: s, tokens: [1] }, { seq: s, tokens: [2] }])).rejects.toThrow(/repeats sequence/);
    await expect(engine.step([{ seq: 999, tokens: [1] }])).rejects.toThrow(/999/);
    const first = engine.step([{ seq: s, tokens: [1, 2, 3] }]);
    await expect(engine.step([{ seq: s, tokens: [4] }])).rejects.toThrow(/still running/);
    await first;
    engine.dispose();
    await expect(engine.step([{ seq: s, tokens: [1] }])).rejects.toThrow(/disposed/);
  });

  it('native validation: bad page ids and short tables are errors, not crashes', async () => {
    const layout = kvLayout(plan, { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, dtypeBytes: 4 });
    const { NativeModel } = loadAddon();
    const native = new NativeModel(nativeModelDesc(cfg, plan, layout), { backend: 'cpu', threads: 1 });
    try {
      for (const w of randomWeights(cfg, plan, { seed: 1, dtype: 'f32' })) native.setWeight(w.name, w.dtype, w.shape, w.bytes);
      native.allocateKv(4, 'f32', 16);
      const step = (tables: Int32Array[], strides: number[]) =>
        native.forward({
          tokens: Int32Array.of(1, 2),
          numNew: Int32Array.of(2),
          pastLen: Int32Array.of(0),
          tables,
          tableStrides: Int32Array.from(strides),
          logitRows: Int32Array.of(1),
        });
      const ok = layout.classes.map((c) => Int32Array.from({ length: c.pagesPerBlock }, (_, i) => i));
      await expect(step(ok, layout.classes.map((c) => c.pagesPerBlock))).resolves.toHaveLength(cfg.vocabSize);
      const outOfRange = ok.map((t) => t.map(() => 7));
      await expect(step(outOfRange, layout.classes.map((c) => c.pagesPerBlock))).rejects.toThrow(/page/);
      const dropped = ok.map((t) => t.map(() => -1));
      await expect(step(dropped, layout.classes.map((c) => c.pagesPerBlock))).rejects.toThrow(/page/);
      await expect(step(ok.map(() => new Int32Array(0)), layout.classes.map(() => 0))).rejects.toThrow(/too short/);
      expect(() => native.setWeight('embed', 'f32', [1], new Float32Array(1))).toThrow(/given twice|shape/);
      expect(() => native.allocateKv(0, 'f32', 16)).toThrow(/numPages/);
    } finally {
      native.dispose();
    }
    expect(native.info().disposed).toBe(true);
  });
});
