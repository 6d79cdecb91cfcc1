import { describe, expect, it } from 'vitest';
import { fastWeights } from '../../lib/model/fast-weights.js';
import { bf16ToF32 } from '../../lib/model/bf16.js';
import { weightSpecs } from '../../lib/model/weights.js';
import { llamaConfig } from '../../lib/model/config.js';
import { presetPlan } from '../../lib/plan/presets.js';

const cfg = llamaConfig({ vocabSize: 300, hiddenSize: 64, intermediateSize: 96, numLayers: 4, numHeads: 4, numKvHeads: 2 });

const values = (bytes: Uint8Array) => bf16ToF32(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));

describe('fastWeights (benchmark weights)', () => {
  it('gives every tensor of weightSpecs, in bf16, at the init scale, with no zeros or NaNs', () => {
    const plan = presetPlan('ma', 4, { window: 8 });
    const got = [...fastWeights(cfg, plan, 7)];
    expect(got.map((w) => [w.name, w.shape])).toEqual(weightSpecs(cfg, plan).map((s) => [s.name, s.shape]));
    for (const w of got) {
      const v = values(w.bytes);
      expect(w.dtype).toBe('bf16');
      expect(v.every((x) => Number.isFinite(x) && x !== 0), w.name).toBe(true);
      const mean = v.reduce((a, x) => a + x, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / v.length);
      if (w.name.endsWith('_proj') || w.name === 'lm_head') expect(std * Math.sqrt(w.shape[1])).toBeCloseTo(1, 0);
      if (w.name.endsWith('_norm')) expect(mean).toBeCloseTo(1, 1);
      if (w.name === 'embed') expect(std).toBeCloseTo(1, 0);
    }
  });

  it('is deterministic per (seed, name): plans share the tensors they have in common', () => {
    const a = new Map([...fastWeights(cfg, presetPlan('standard', 4), 7)].map((w) => [w.name, w.bytes]));
    const b = new Map([...fastWeights(cfg, presetPlan('ma', 4, { window: 8 }), 7)].map((w) => [w.name, w.bytes]));
    for (const [name, bytes] of b) expect(Buffer.from(bytes).equals(Buffer.from(a.get(name)!)), name).toBe(true);
    const c = [...fastWeights(cfg, presetPlan('standard', 4), 8)][0];
    expect(Buffer.from(c.bytes).equals(Buffer.from(a.get('embed')!))).toBe(false);
  });
});
