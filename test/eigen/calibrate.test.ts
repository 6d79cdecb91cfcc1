/**
 * `calibrate` end to end on tiny random models (CPU): budget 0 keeps every rank full and the
 * model unchanged; a model whose K/V projections have a known rank-16 range gets ranks ≤ 16
 * within the budget, also on held-out tokens (checked by an independent float64 forward of
 * the written tensors); the written config, tensors and calibration.json agree; --plan folds
 * readers' o_proj with their owner's value basis.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { calibrate, type CalibrationReport } from '../../lib/eigen/calibrate.js';
import { Checkpoint, type TensorInfo } from '../../lib/hf/safetensors.js';
import { toF32 } from '../../lib/hf/convert.js';
import { loadEngine, readModelDir } from '../../lib/hf/load.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { sampleTokens } from '../../lib/eigen/capture.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { parsePlan } from '../../lib/plan/notation.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import type { ModelConfig } from '../../lib/model/config.js';
import { tempRoot } from '../hf/helpers.js';
import { relDiff } from '../reference/helpers.js';
import { eigenForward64, layerErrors } from './reference64.js';
import { lowRankKv, testText, testWeights, tinyConfig, writeTestModel, writeText } from './helpers.js';

const t = tempRoot();
afterAll(() => t.cleanup());

const cfg = tinyConfig();
const d = cfg.headDim;
const standard = presetPlan('standard', cfg.numLayers);
const data = writeText(t.dir('calib.txt'), 30_000);
const heldOut = testText(4000, 99);

async function readTensors(dir: string): Promise<{ values: Map<string, Float32Array>; info: Map<string, TensorInfo> }> {
  const cp = await Checkpoint.open(dir);
  try {
    const values = new Map<string, Float32Array>();
    for (const [name, info] of cp.tensors) values.set(name, Float32Array.from(toF32(info.dtype, await cp.read(name))));
    return { values, info: new Map(cp.tensors) };
  } finally {
    await cp.close();
  }
}

/** Logits of every position of `tokens` from the engine running a model directory (CPU). */
async function engineLogits(dir: string, tokens: readonly number[]): Promise<Float64Array[]> {
  await using engine = await loadEngine(dir, { threads: 2, kvPages: 64 });
  const V = engine.config.vocabSize;
  const [l] = await engine.step([{ seq: engine.addSequence(), tokens, logits: 'all' }]);
  return Array.from({ length: tokens.length }, (_, p) => Float64Array.from(l.subarray(p * V, (p + 1) * V)));
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/**
 * Per-layer errors of the written model on token sequences: each layer's o_proj(attention)
 * output from the written tensors against the original's, both on the original model's
 * attention inputs, over all sequences' tokens (float64).
 */
async function writtenErrors(original: string, written: string, c: ModelConfig, plan: LayerPlan, ranks: { k: number[]; v: number[] }, seqs: readonly number[][]): Promise<number[]> {
  const full = Array(c.numLayers).fill(c.headDim);
  const before = (await readTensors(original)).values;
  const after = (await readTensors(written)).values;
  const y: Float64Array[][] = Array.from({ length: c.numLayers }, () => []);
  const yHat: Float64Array[][] = Array.from({ length: c.numLayers }, () => []);
  for (const tokens of seqs) {
    const h: Float64Array[][] = [];
    eigenForward64(c, plan, before, tokens, { kRanks: full, vRanks: full, onLayer: (l, hl, yl) => { h[l] = [...hl]; y[l].push(...yl); } });
    eigenForward64(c, plan, after, tokens, { kRanks: ranks.k, vRanks: ranks.v, inputs: h, onLayer: (l, _, yl) => void yHat[l].push(...yl) });
  }
  return layerErrors(y, yHat);
}

const heldOutErrors = async (original: string, written: string, c: ModelConfig, plan: LayerPlan, ranks: { k: number[]; v: number[] }) =>
  writtenErrors(original, written, c, plan, ranks, [(await Tokenizer.fromDir(original)).encode(heldOut).slice(0, 80)]);

describe('calibrate', () => {
  it('a budget of ~0: every rank stays full and the written model is the original', async () => {
    const model = writeTestModel(t.dir('plain'), cfg, testWeights(cfg, standard));
    const out = t.dir('plain-eigen');
    // The smallest budget config.json can hold (error_budget > 0): no rank below full fits.
    const report = await calibrate({ model, data, out, samples: 4, seqLen: 48, errorBudget: 1e-12, backend: 'cpu', threads: 2 });
    expect(report.layers.map((l) => [l.k_rank, l.v_rank])).toEqual(Array(4).fill([d, d]));
    expect(report.layers.every((l) => l.error === 0)).toBe(true);
    expect((json(join(out, 'config.json')).eigen_attention)).toEqual({ k_ranks: [d, d, d, d], v_ranks: [d, d, d, d], error_budget: 1e-12 });
    const { info } = await readTensors(out);
    expect([...info.keys()].some((n) => n.includes('k_up'))).toBe(false);

    // The engine runs it and gives the original's logits; so does the float64 format reference.
    const tokens = (await Tokenizer.fromDir(model)).encode(heldOut).slice(0, 40);
    const logitsOf = (dir: string) => engineLogits(dir, tokens);
    expect(relDiff(await logitsOf(out), await logitsOf(model))).toBeLessThan(1e-4);
    const full = Array(4).fill(d);
    const ref = eigenForward64(cfg, standard, (await readTensors(model)).values, tokens, { kRanks: full, vRanks: full });
    expect(relDiff(eigenForward64(cfg, standard, (await readTensors(out)).values, tokens, { kRanks: full, vRanks: full }), ref)).toBeLessThan(1e-10);
    expect(relDiff(await logitsOf(out), ref)).toBeLessThan(1e-4);
  });

  describe('a model with rank-16 K/V (bf16)', () => {
    const model = writeTestModel(t.dir('lowrank'), cfg, lowRankKv(testWeights(cfg, standard, { dtype: 'bf16' }), cfg, 16, 2e-3));
    const out = t.dir('lowrank-eigen');
    let report: CalibrationReport;

    it('gets ranks ≤ 16 within the budget, and writes them as the tensors’ shapes', async () => {
      const lines: string[] = [];
      report = await calibrate({ model, data, out, samples: 8, seqLen: 64, backend: 'cpu', threads: 2, log: (l) => lines.push(l) });
      for (const l of report.layers) {
        expect(l.k_rank).toBeLessThanOrEqual(16);
        expect(l.v_rank).toBeLessThanOrEqual(16);
        expect(l.error).toBeLessThanOrEqual(0.025);
        expect(l.error).toBeGreaterThan(0);
        expect(l.search![l.search!.length - 1].error).toBeGreaterThan(0.025); // the search went until the budget broke
        expect(l.k_energy).toBeGreaterThan(0.99);
      }
      expect(lines.filter((l) => /^calibrate: layer \d: k rank \d+, v rank \d+ of 32/.test(l))).toHaveLength(4);
      expect(json(join(out, 'calibration.json'))).toEqual(JSON.parse(JSON.stringify(report)));
      // The errors it measured (backend ops, f32) are the written model's on its calibration samples (float64).
      const samples = sampleTokens(readFileSync(data, 'utf8'), await Tokenizer.fromDir(model), 8, 64, data);
      const ranksOf = { k: report.layers.map((l) => l.k_rank), v: report.layers.map((l) => l.v_rank) };
      const ref = await writtenErrors(model, out, cfg, standard, ranksOf, samples);
      report.layers.forEach((l, i) => expect(Math.abs(l.error - ref[i]), `layer ${i}`).toBeLessThan(1e-3 * ref[i]));

      const config = json(join(out, 'config.json'));
      const ranks = config.eigen_attention as { k_ranks: number[]; v_ranks: number[]; error_budget: number };
      expect(ranks).toEqual({ k_ranks: report.layers.map((l) => l.k_rank), v_ranks: report.layers.map((l) => l.v_rank), error_budget: 0.025 });
      expect(config.kv_sources).toBeUndefined(); // no --plan: the checkpoint's own
      const { info } = await readTensors(out);
      const shape = (i: number, w: string) => info.get(`model.layers.${i}.self_attn.${w}`)?.shape;
      for (let i = 0; i < 4; i++) {
        const [rk, rv] = [ranks.k_ranks[i], ranks.v_ranks[i]];
        expect(shape(i, 'k_proj.weight')).toEqual([2 * rk, cfg.hiddenSize]);
        expect(shape(i, 'k_up.weight')).toEqual(rk < d ? [d, rk] : undefined);
        expect(shape(i, 'v_proj.weight')).toEqual([2 * rv, cfg.hiddenSize]);
        expect(shape(i, 'o_proj.weight')).toEqual([cfg.hiddenSize, cfg.numHeads * rv]);
      }
      expect(new Set([...info.values()].map((x) => x.dtype))).toEqual(new Set(['BF16']));
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
        expect(readFileSync(join(out, f))).toEqual(readFileSync(join(model, f)));
      }
    });

    it('the low-rank runtime serves the written model as the format says', async () => {
      const tokens = (await Tokenizer.fromDir(model)).encode(heldOut).slice(0, 60);
      const ranks = { kRanks: report.layers.map((l) => l.k_rank), vRanks: report.layers.map((l) => l.v_rank) };
      const ref = eigenForward64(cfg, standard, (await readTensors(out)).values, tokens, ranks);
      expect(relDiff(await engineLogits(out, tokens), ref)).toBeLessThan(1e-4);
    });

    it('stays within the budget on held-out tokens', async () => {
      const errs = await heldOutErrors(model, out, cfg, standard, { k: report.layers.map((l) => l.k_rank), v: report.layers.map((l) => l.v_rank) });
      for (const e of errs) {
        expect(e).toBeLessThanOrEqual(0.025);
        expect(e).toBeGreaterThan(1e-4);
      }
    });
  });

  it('--plan ma on a standard checkpoint: readers drop K/V and fold their o_proj with the owner’s value basis', async () => {
    const qcfg = tinyConfig({ qkvBias: true }); // Qwen2: biases are folded too
    const model = writeTestModel(t.dir('qwen'), qcfg, lowRankKv(testWeights(qcfg, standard), qcfg, 16, 2e-3), { arch: 'qwen2' });
    // The `ma` preset at 4 layers, with a window the 64-token samples cross.
    const spec = 'w=24 0 1s 1s 0';
    const plan = parsePlan(spec);
    expect(plan.layers).toEqual(presetPlan('ma', 4, { window: 24 }).layers);
    const out = t.dir('plan-eigen');
    const report = await calibrate({ model, data, out, samples: 6, seqLen: 64, plan: spec, backend: 'cpu', threads: 2 });
    const config = json(join(out, 'config.json'));
    expect(config.kv_sources).toEqual([0, 1, 1, 0]);
    expect(config.layer_types).toEqual(['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention']);
    expect(config.sliding_window).toBe(24);
    const ranks = config.eigen_attention as { k_ranks: number[]; v_ranks: number[] };
    expect(ranks.k_ranks[3]).toBe(ranks.k_ranks[0]);
    expect(ranks.v_ranks[2]).toBe(ranks.v_ranks[1]);
    expect(report.layers[0].readers).toEqual([0, 3]);
    expect(report.layers[1].readers).toEqual([1, 2]);
    const { info } = await readTensors(out);
    for (const reader of [2, 3]) {
      expect(info.has(`model.layers.${reader}.self_attn.k_proj.weight`)).toBe(false);
      expect(info.has(`model.layers.${reader}.self_attn.v_proj.weight`)).toBe(false);
      expect(info.get(`model.layers.${reader}.self_attn.o_proj.weight`)!.shape).toEqual([cfg.hiddenSize, cfg.numHeads * ranks.v_ranks[reader]]);
    }
    expect(ranks.k_ranks.every((r) => r <= 16) && ranks.v_ranks.every((r) => r <= 16)).toBe(true);
    const md = await readModelDir(out);
    expect(md.plan.layers.map((l) => l.kvSource)).toEqual([0, 1, 1, 0]);
    // Readers' outputs stay within the budget on held-out tokens: their o_proj matches the owner's values.
    const errs = await heldOutErrors(model, out, qcfg, plan, { k: ranks.k_ranks, v: ranks.v_ranks });
    for (const e of errs) expect(e).toBeLessThanOrEqual(0.025);
    for (const l of report.layers) expect(l.error).toBeLessThanOrEqual(0.025);
    // Served by the low-rank runtime as the format says, readers included.
    const tokens = (await Tokenizer.fromDir(model)).encode(heldOut).slice(0, 60);
    const ref = eigenForward64(qcfg, plan, (await readTensors(out)).values, tokens, { kRanks: ranks.k_ranks, vRanks: ranks.v_ranks });
    expect(relDiff(await engineLogits(out, tokens), ref)).toBeLessThan(1e-4);
  });

  it('samples are deterministic, spread over the text, BOS first', async () => {
    const tok = await Tokenizer.fromDir(t.dir('plain'));
    const text = readFileSync(data, 'utf8');
    const a = sampleTokens(text, tok, 5, 40, data);
    expect(sampleTokens(text, tok, 5, 40, data)).toEqual(a);
    expect(a.every((s) => s.length === 40 && s[0] === tok.bosTokenId)).toBe(true);
    expect(new Set(a.map((s) => s.join(','))).size).toBe(5);
    expect(a[0].slice(1)).toEqual(tok.encode(text.slice(0, 1000), { addSpecialTokens: false }).slice(0, 39));
    // Lossless byte-level BPE: each sample is a piece of the text, the last one near its end.
    const at = a.map((x) => text.indexOf(tok.decode(x.slice(1))));
    expect(at[0]).toBe(0);
    expect(at.every((p, i) => p >= 0 && (i === 0 || p > at[i - 1]))).toBe(true);
    expect(at[4]).toBeGreaterThan((text.length * 4) / 5 - 400);
  });
});
