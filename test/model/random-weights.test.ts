import { describe, expect, it } from 'vitest';
import { llamaConfig } from '../../lib/model/config.js';
import { weightSpecs } from '../../lib/model/weights.js';
import type { LayerPlan, LayerSpec } from '../../lib/plan/types.js';
import { randomTensor, randomWeights, weightKind, weightMap } from '../../lib/model/random-weights.js';
import { roundToBf16 } from '../../lib/model/bf16.js';

const g = (src: number): LayerSpec => ({ attention: { kind: 'global' }, kvSource: src });
const sw = (window: number, src: number): LayerSpec => ({ attention: { kind: 'sliding', window }, kvSource: src });
const plan = (...layers: LayerSpec[]): LayerPlan => ({ name: 'custom', layers });

const cfg = llamaConfig({
  vocabSize: 50, hiddenSize: 32, intermediateSize: 48, numLayers: 4, numHeads: 4, numKvHeads: 2,
  qkvBias: true, qkNorm: true, sandwichNorm: true,
});
const standard = plan(g(0), g(1), g(2), g(3));
const mixed = plan(g(0), sw(8, 1), sw(4, 1), g(0));

const stats = (a: Float32Array) => {
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length);
  return { mean, std };
};

describe('randomWeights', () => {
  it('follows weightSpecs: names, order, shapes, sizes', () => {
    for (const p of [standard, mixed]) {
      for (const dtype of ['f32', 'bf16'] as const) {
        const ws = randomWeights(cfg, p, { seed: 1, dtype });
        const specs = weightSpecs(cfg, p);
        expect(ws.map((w) => [w.name, w.shape])).toEqual(specs.map((s) => [s.name, [...s.shape]]));
        for (const w of ws) {
          const n = w.shape.reduce((a, b) => a * b, 1);
          expect(w.dtype).toBe(dtype);
          expect(w.data.length).toBe(n);
          expect(w.bytes.length).toBe(n * (dtype === 'f32' ? 4 : 2));
        }
      }
    }
  });

  it('depends only on (seed, name): reproducible, seed-sensitive, order-independent', () => {
    const a = randomWeights(cfg, standard, { seed: 5, dtype: 'f32' });
    const b = randomWeights(cfg, standard, { seed: 5, dtype: 'f32' });
    const c = randomWeights(cfg, standard, { seed: 6, dtype: 'f32' });
    a.forEach((t, i) => {
      expect(b[i].bytes).toEqual(t.bytes);
      expect(c[i].data).not.toEqual(t.data);
      expect(randomTensor({ name: t.name, shape: t.shape }, { seed: 5, dtype: 'f32' }).data).toEqual(t.data);
    });
    // distinct names give distinct streams, even for tensors of equal shape
    const m = weightMap(a);
    expect(m.get('layers.0.gate_proj')).not.toEqual(m.get('layers.0.up_proj'));
    expect(m.get('layers.0.q_proj')).not.toEqual(m.get('layers.1.q_proj'));
  });

  it('gives two plans over one config the same weights for every tensor they share', () => {
    const a = weightMap(randomWeights(cfg, standard, { seed: 9, dtype: 'bf16' }));
    const b = weightMap(randomWeights(cfg, mixed, { seed: 9, dtype: 'bf16' }));
    expect(b.has('layers.1.k_proj')).toBe(true);
    expect(b.has('layers.2.k_proj')).toBe(false);
    for (const [name, data] of b) expect(a.get(name)).toEqual(data);
  });

  it('stores bf16 bytes that decode (little-endian) to data, and data is f32 data rounded to bf16', () => {
    const f = randomWeights(cfg, mixed, { seed: 3, dtype: 'f32' });
    const h = randomWeights(cfg, mixed, { seed: 3, dtype: 'bf16' });
    h.forEach((t, i) => {
      const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
      const decoded = Float32Array.from({ length: t.data.length }, (_, j) =>
        new Float32Array(new Uint32Array([dv.getUint16(2 * j, true) << 16]).buffer)[0]);
      expect(decoded).toEqual(t.data);
      expect(t.data).toEqual(roundToBf16(f[i].data));
      const fdv = new DataView(f[i].bytes.buffer, f[i].bytes.byteOffset, f[i].bytes.byteLength);
      expect(Float32Array.from({ length: t.data.length }, (_, j) => fdv.getFloat32(4 * j, true))).toEqual(f[i].data);
    });
  });

  it('initialises each kind at its scale (linear 1/sqrt(in), norms 1±0.1, biases 0.1, embeddings 1)', () => {
    const big = llamaConfig({ vocabSize: 512, hiddenSize: 256, intermediateSize: 1024, numLayers: 1, numHeads: 4, numKvHeads: 4, qkvBias: true });
    const m = weightMap(randomWeights(big, plan(g(0)), { seed: 2, dtype: 'f32' }));
    const near = (x: number, want: number, rel: number) => expect(Math.abs(x - want)).toBeLessThan(rel * want);
    near(stats(m.get('layers.0.q_proj')!).std, 1 / 16, 0.02);
    near(stats(m.get('layers.0.down_proj')!).std, 1 / 32, 0.02);
    near(stats(m.get('lm_head')!).std, 1 / 16, 0.02);
    near(stats(m.get('embed')!).std, 1, 0.02);
    near(stats(m.get('layers.0.q_bias')!).std, 0.1, 0.15);
    const norm = stats(m.get('layers.0.attn_norm')!);
    near(norm.mean, 1, 0.03);
    near(norm.std, 0.1, 0.15);
    expect(Math.abs(stats(m.get('layers.0.q_proj')!).mean)).toBeLessThan(0.002);
  });

  it('classifies canonical names and rejects unknown ones', () => {
    expect(weightKind('embed')).toBe('embedding');
    expect(weightKind('lm_head')).toBe('linear');
    expect(weightKind('layers.3.k_norm')).toBe('norm');
    expect(weightKind('layers.3.v_bias')).toBe('bias');
    expect(weightKind('final_norm')).toBe('norm');
    expect(() => weightKind('layers.0.mystery')).toThrow(/unknown/);
    expect(() => randomWeights(cfg, standard, { seed: 1, dtype: 'f16' as never })).toThrow(/dtype/);
  });
});
