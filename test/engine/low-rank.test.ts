/**
 * Low-rank K/V (Eigen Attention) on the engine (CPU backend) against the float64 reference:
 * every preset with owners at mixed ranks (full width, values only, keys only, both, ranks
 * that are not multiples of 8), whole / chunked / token-by-token prefill in ragged batches,
 * the padded decode steps of the CUDA-graph path (run eagerly), bf16 weights and KV, and
 * the KV bytes the ranks imply.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from '../../lib/engine/engine.js';
import { nativeModelDesc } from '../../lib/engine/native-desc.js';
import { kvLayout } from '../../lib/kv/layout.js';
import { loadAddon, type NativeModelDesc } from '../../lib/native.js';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { randomWeights, weightMap } from '../../lib/model/random-weights.js';
import { kvBytesPerToken, pagesPerSequence } from '../../lib/kv/memory-model.js';
import { PRESET_NAMES, presetPlan } from '../../lib/plan/presets.js';
import { parsePlan } from '../../lib/plan/notation.js';
import { withKvRank } from '../../lib/plan/ranks.js';
import type { KvRank, LayerPlan } from '../../lib/plan/types.js';
import { referenceForward } from '../reference/transformer64.js';
import { gemmaLike, relDiff, tokensOf } from '../reference/helpers.js';
import { engineLogits, makeEngine, type Schedule } from './harness.js';

const TOL = 1e-4;

const cfg = llamaConfig({ vocabSize: 53, hiddenSize: 32, intermediateSize: 40, numLayers: 7, numHeads: 4, numKvHeads: 2, headDim: 16 });

/** Owners take these in turn: both low, values only, full width, keys only, both (none a multiple of 8 but 16). */
const MIX: KvRank[] = [
  { k: 7, v: 11 },
  { k: 16, v: 5 },
  { k: 16, v: 16 },
  { k: 3, v: 16 },
  { k: 12, v: 1 },
];
const mixed = (plan: LayerPlan, shift = 0): LayerPlan => {
  const owners = plan.layers.flatMap((l, i) => (l.kvSource === i ? [i] : []));
  return withKvRank(plan, (o) => MIX[(owners.indexOf(o) + shift) % MIX.length]);
};

async function check(
  c: ModelConfig,
  plan: LayerPlan,
  prompts: number[][],
  schedules: Schedule[],
  opts: { dtype?: 'f32' | 'bf16'; kvDtype?: 'f32' | 'bf16'; tol?: number } = {},
): Promise<number> {
  const weights = randomWeights(c, plan, { seed: 5, dtype: opts.dtype ?? 'f32' });
  using engine = makeEngine(c, plan, { seed: 5, dtype: opts.dtype, kvDtype: opts.kvDtype });
  const got = await engineLogits(engine, prompts, schedules);
  let worst = 0;
  prompts.forEach((p, i) => {
    const ref = referenceForward(c, plan, weightMap(weights), p);
    expect(got[i]).toHaveLength(p.length);
    worst = Math.max(worst, relDiff(got[i], ref));
  });
  expect(worst).toBeLessThan(opts.tol ?? TOL);
  expect(engine.blocks.usedPages).toBe(0);
  return worst;
}

const prompts = [tokensOf(23, cfg.vocabSize, 1), tokensOf(9, cfg.vocabSize, 2), tokensOf(17, cfg.vocabSize, 3)];
const schedules: Schedule[] = ['whole', 'decode', { pattern: [5, 1, 3] }];

describe('low-rank K/V: engine vs float64 reference', () => {
  afterEach(() => {
    delete process.env.MIXATTN_CUDA_GRAPHS;
  });

  for (const name of PRESET_NAMES) {
    it(`${name}: mixed ranks, window 6, whole / token-by-token / chunked in one ragged batch`, async () => {
      const plan = mixed(presetPlan(name, cfg.numLayers, { window: 6 }));
      expect(plan.layers.some((l) => l.kvRank !== undefined && l.kvRank.k < cfg.headDim) || name === 'sliding').toBe(true);
      await check(cfg, plan, prompts, schedules);
    });
  }

  it('every owner at one low rank (pages narrower, none shared), window longer than the prompts', async () => {
    await check(cfg, withKvRank(presetPlan('ma-pairs', cfg.numLayers, { window: 64 }), { k: 5, v: 9 }), prompts, [{ chunk: 4 }, 'whole', 'decode']);
  });

  it('blocks of 16 crossed by chunks of every size while sliding classes return blocks', async () => {
    const plan = mixed(presetPlan('characterai', cfg.numLayers, { window: 17 }), 2);
    await check(cfg, plan, [tokensOf(70, cfg.vocabSize, 6), tokensOf(53, cfg.vocabSize, 7)], [{ pattern: [1, 15, 2, 16, 17, 5] }, 'decode']);
  });

  it('decode steps padded to their bucket (the CUDA-graph path, run eagerly) use the spare page at every offset', async () => {
    process.env.MIXATTN_CUDA_GRAPHS = 'eager';
    const plan = mixed(presetPlan('ma', cfg.numLayers, { window: 5 }), 1);
    await check(cfg, plan, prompts, ['decode', 'decode', 'decode']);
  });

  it('a reader whose RoPE differs from its source sees the keys its source rotated (local RoPE)', async () => {
    const local = llamaConfig({ ...cfg, numLayers: 4, ropeTheta: 1e6, ropeThetaLocal: 1e4, localRopeLayers: [1, 2] });
    const plan = parsePlan('0:k6v10 0s5:k6v10 2s4:k9v16 2s3:k9v16', { headDim: 16 });
    await check(local, plan, prompts.slice(0, 2), [{ chunk: 3 }, 'whole']);
  });

  it('Gemma-like switches (q/k norm, biases, soft-caps, tied) with values at rank', async () => {
    const gem = gemmaLike(6);
    const plan = withKvRank(presetPlan('gemma3', 6, { window: 4 }), (o) => ({ k: 8, v: 1 + (o % 7) }));
    await check(gem, plan, [tokensOf(15, gem.vocabSize, 3)], [{ chunk: 4 }]);
  });

  it('bf16 weights (key bases too) are exact against the reference fed the same rounded values', async () => {
    const plan = mixed(presetPlan('ma-offset', cfg.numLayers, { window: 6 }));
    await check(cfg, plan, prompts.slice(0, 1), [{ chunk: 5 }], { dtype: 'bf16' });
  });

  it('bf16 KV storage stays close (lossy by design)', async () => {
    const plan = mixed(presetPlan('ma', cfg.numLayers, { window: 6 }));
    const err = await check(cfg, plan, prompts.slice(0, 1), ['decode'], { kvDtype: 'bf16', tol: 2e-2 });
    expect(err).toBeGreaterThan(0);
  });
});

describe('low-rank K/V: memory', () => {
  it('bytes per token are numKvHeads × (kRank + vRank) × dtype summed over owners; native pages match the layout', async () => {
    for (const name of PRESET_NAMES) {
      const plan = mixed(presetPlan(name, cfg.numLayers, { window: 6 }));
      using engine = makeEngine(cfg, plan, { kvPages: 64 });
      let want = 0;
      plan.layers.forEach((l, i) => {
        if (l.kvSource === i) want += cfg.numKvHeads * ((l.kvRank?.k ?? 16) + (l.kvRank?.v ?? 16)) * 4;
      });
      expect(kvBytesPerToken(engine.layout)).toBe(want);
      const widest = Math.max(...plan.layers.map((l) => (l.kvRank?.k ?? 16) + (l.kvRank?.v ?? 16)));
      expect(engine.pageBytes).toBe(16 * cfg.numKvHeads * widest * 4);
      const info = (engine as unknown as { native: { info(): { kvPageBytes?: number } } }).native.info();
      expect(info.kvPageBytes).toBe(engine.pageBytes);
      const seq = engine.addSequence();
      await engine.step([{ seq, tokens: tokensOf(40, cfg.vocabSize) }]);
      expect(engine.blocks.usedPages).toBe(pagesPerSequence(engine.layout, 40, 40));
      engine.releaseSequence(seq);
    }
  });

  it('narrow owners share pages: a low-rank standard plan takes fewer pages than full width', () => {
    const plan = withKvRank(presetPlan('standard', cfg.numLayers), (o) => (o === 0 ? undefined : { k: 5, v: 3 }));
    using low = makeEngine(cfg, plan, { kvPages: 8 });
    using full = makeEngine(cfg, presetPlan('standard', cfg.numLayers), { kvPages: 8 });
    // one full-width owner (32 wide) and six of width 8: four share a page, so 1 + 2 pages per block
    expect(low.layout.classes[0].pagesPerBlock).toBe(3);
    expect(full.layout.classes[0].pagesPerBlock).toBe(7);
  });
});

describe('low-rank K/V: errors', () => {
  it('refuses low-rank keys with q/k norms, naming the layer', () => {
    const gem = gemmaLike(2);
    const plan = parsePlan('0 1:k4v8', { headDim: 8 });
    expect(() => randomWeights(gem, plan, { seed: 1, dtype: 'f32' })).toThrow(/layer 1: low-rank keys \(kvRank.k 4 < headDim 8\) cannot be used with q\/k norms/);
    expect(() => Engine.create(gem, plan, [], { kvPages: 4 })).toThrow(/layer 1: low-rank keys/);
  });

  it('weights at the wrong rank, or a missing key basis, are named', () => {
    const plan = parsePlan('0:k4v6 0:k4v6 2', { headDim: 16 });
    const c3 = llamaConfig({ ...cfg, numLayers: 3 });
    const full = randomWeights(c3, presetPlan('standard', 3), { seed: 1, dtype: 'f32' });
    expect(() => Engine.create(c3, plan, full, { kvPages: 4 })).toThrow(/'layers\.0\.k_proj' has shape \[32, 32\], expected \[8, 32\]/);
    const low = randomWeights(c3, plan, { seed: 1, dtype: 'f32' });
    expect(low.find((t) => t.name === 'layers.0.k_up')?.shape).toEqual([16, 4]);
    expect(low.find((t) => t.name === 'layers.1.o_proj')?.shape).toEqual([32, 4 * 6]);
    expect(() => Engine.create(c3, plan, low.filter((t) => t.name !== 'layers.0.k_up'), { kvPages: 4 })).toThrow(/missing: layers\.0\.k_up/);
    // a reader has no basis of its own
    const extra = [...low, { ...low.find((t) => t.name === 'layers.0.k_up')!, name: 'layers.1.k_up' }];
    expect(() => Engine.create(c3, plan, extra, { kvPages: 4 })).toThrow(/'layers\.1\.k_up' is not part of this model/);
  });

  it('the native model description is checked: widths, shared-page regions and readers, naming the layer', () => {
    const c3 = llamaConfig({ ...cfg, numLayers: 4 });
    const plan = parsePlan('0:k4v6 0:k4v6 2:k5v3 3', { headDim: 16 });
    const layout = kvLayout(plan, { numKvHeads: c3.numKvHeads, headDim: 16, dtypeBytes: 4 });
    // widths 10 and 8 share the second page of the block (the full-width owner 3 has the first)
    expect(layout.layerPlacement.map((p) => [p.slot, p.offset])).toEqual([[1, 0], [1, 0], [1, 10], [0, 0]]);
    const { NativeModel } = loadAddon();
    const build = (edit: (d: NativeModelDesc) => void) => {
      const d = structuredClone(nativeModelDesc(c3, plan, layout));
      edit(d);
      new NativeModel(d, { backend: 'cpu', threads: 1 }).dispose();
    };
    expect(() => build(() => {})).not.toThrow();
    expect(() => build((d) => void (d.layers[1].pageOffset = 2))).toThrow(/layers\[1\]\.pageOffset\/kDim\/vDim\/lowRankKeys must equal its source's/);
    expect(() => build((d) => void (d.layers[2].pageOffset = 4))).toThrow(/layers\[2\]\.pageOffset overlaps another owner's region of its page/);
    expect(() => build((d) => void (d.layers[2].pageOffset = 25))).toThrow(/layers\[2\]\.pageOffset 25 \+ kDim \+ vDim \(8\) must fit pageWidth 32/);
    expect(() => build((d) => void ((d.layers[0].lowRankKeys = false), (d.layers[1].lowRankKeys = false)))).toThrow(/layers\[0\]\.kDim 4: keys narrower than headDim=16 must be low-rank keys/);
    expect(() => build((d) => void (d.layers[3].vDim = 17))).toThrow(/layers\[3\]\.vDim 17 must be in \[1, headDim=16\]/);
    expect(() => build((d) => void (d.classes[0].pagesPerBlock = 3))).toThrow(/classes\[0\]: no owner uses page 2 of its blocks/);
  });
});
