/** Parameter counts (against the checkpoints themselves), plan naming and KV bytes per sequence. */
import { describe, expect, it } from 'vitest';
import { readModelDir } from '../../lib/hf/load.js';
import { Checkpoint } from '../../lib/hf/safetensors.js';
import { parsePlan } from '../../lib/plan/notation.js';
import { PRESET_NAMES, presetPlan } from '../../lib/plan/presets.js';
import { kvCost, parameterCount, planInfo } from '../../lib/eval/cost.js';
import { fixtureDir } from './helpers.js';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';

describe('parameterCount', () => {
  for (const name of ['llama3', 'mixattn', 'gemma3']) {
    it(`${name}: equals the elements stored in the checkpoint`, async () => {
      const dir = fixtureDir(name);
      const md = await readModelDir(dir);
      await using cp = await Checkpoint.open(dir);
      const stored = [...cp.tensors.values()].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
      expect(parameterCount(md.config, md.plan)).toBe(stored);
    });
  }
});

describe('planInfo', () => {
  it('names every preset of the trained family (12 layers, window 128), coinciding presets included', () => {
    for (const name of ['standard', 'ma', 'ma-endslide', 'ma-offset', 'ma-pairs', 'sliding']) {
      const info = planInfo(presetPlan(name, 12, { window: 128 }));
      expect(info.preset).toBe(name);
      expect(info.window).toBe(name === 'standard' ? undefined : 128);
      expect(info.lowRank).toBe(false);
    }
    expect(planInfo(presetPlan('ma-endslide', 12, { window: 128 })).equals).toEqual(['ma-endslide', 'characterai']);
    expect(planInfo(presetPlan('ma', 12, { window: 128 })).notation).toBe('w=128 0 1s 1s 3s 3s 3s 0 7s 7s 9s 9s 0');
  });

  it('says custom for other layouts, and flags low-rank widths without losing the preset', () => {
    expect(planInfo(parsePlan('w=8 0 1s 1s 0 4s 4s')).preset).toBe('custom');
    const ranked = planInfo(parsePlan('0:k8v8 1:k8v8 2:k8v8', { headDim: 16 }));
    expect(ranked).toMatchObject({ preset: 'standard', lowRank: true, notation: '0:k8v8 1:k8v8 2:k8v8' });
  });
});

describe('kvCost', () => {
  const cfg: ModelConfig = llamaConfig({ vocabSize: 8192, hiddenSize: 384, intermediateSize: 1024, numLayers: 12, numHeads: 6, numKvHeads: 2, headDim: 64 });
  const perLayerToken = 2 * 64 * 2 * 2; // KV heads × head dim × (K, V) × bf16

  it('standard holds every token in every layer', () => {
    const k = kvCost(cfg, presetPlan('standard', 12), 1024);
    expect(k.bytesPerToken).toBe(12 * perLayerToken);
    expect(k.bytesAt1024).toBe(1024 * 12 * perLayerToken);
    expect(k.bytesAtMax).toBe(k.bytesAt1024);
    expect(k.vsStandardAt1024).toBe(1);
  });

  it('sliding layers hold their window (+ the partly used blocks), readers nothing', () => {
    // Window 128 in blocks of 16, growing token by token: at most 128/16 + 1 = 9 blocks.
    const sliding = kvCost(cfg, presetPlan('sliding', 12, { window: 128 }), 4096);
    expect(sliding.bytesAt1024).toBe(12 * 9 * 16 * perLayerToken);
    expect(sliding.bytesAtMax).toBe(sliding.bytesAt1024);
    expect(sliding.standardAtMax).toBe(4096 * 12 * perLayerToken);
    expect(sliding.vsStandardAtMax).toBeCloseTo((9 * 16) / 4096, 12);
    // ma at L = 12: one global cache (layer 0) and sliding owners 1, 3, 7, 9.
    const ma = kvCost(cfg, presetPlan('ma', 12, { window: 128 }), 1024);
    expect(ma.bytesPerToken).toBe(5 * perLayerToken);
    expect(ma.bytesAt1024).toBe((1024 + 4 * 9 * 16) * perLayerToken);
    expect(ma.vsStandardAt1024).toBeCloseTo((1024 + 4 * 144) / (12 * 1024), 12);
  });

  it('every MixAttention preset of the family costs under half of standard at 1024', () => {
    for (const p of PRESET_NAMES.filter((name) => name.startsWith('ma'))) {
      expect(kvCost(cfg, presetPlan(p, 12, { window: 128 }), 1024).vsStandardAt1024, p).toBeLessThan(0.5);
    }
  });
});
