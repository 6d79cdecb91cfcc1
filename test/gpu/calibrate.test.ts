/**
 * Eigen calibration on the GPU: Engine.stepCapture's attention inputs on CUDA (bf16
 * activations) against the CPU engine's, and `calibrate --backend cuda` on a model with a
 * known rank-16 K/V range: ranks ≤ 16, and the errors it measured (bf16 backend ops) within
 * bf16 noise of the written model's true errors (an independent float64 forward).
 *
 * Bound: 2 × PyTorch's whole-model bf16 error ('model', test/gpu/torch_bf16_bounds.py); the
 * attention inputs are intermediate states of such a model, and the errors calibrate measures
 * are differences of two bf16 attention outputs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { calibrate } from '../../lib/eigen/calibrate.js';
import { sampleTokens } from '../../lib/eigen/capture.js';
import { Checkpoint } from '../../lib/hf/safetensors.js';
import { toF32 } from '../../lib/hf/convert.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { makeEngine } from '../engine/harness.js';
import { tempRoot } from '../hf/helpers.js';
import { eigenForward64, layerErrors } from '../eigen/reference64.js';
import { lowRankKv, testWeights, tinyConfig, writeTestModel, writeText } from '../eigen/helpers.js';
import { SEED, TWIN, bound, cudaAvailable, expectWithin, relErr } from './twin.js';

const t = tempRoot();
afterAll(() => t.cleanup());

async function tensors(dir: string): Promise<Map<string, Float32Array>> {
  const cp = await Checkpoint.open(dir);
  try {
    const out = new Map<string, Float32Array>();
    for (const [name, info] of cp.tensors) out.set(name, Float32Array.from(toF32(info.dtype, await cp.read(name))));
    return out;
  } finally {
    await cp.close();
  }
}

describe.skipIf(!cudaAvailable)(`Eigen calibration on ${TWIN} (seed ${SEED})`, () => {
  it('stepCapture: attention inputs of every layer match the CPU engine’s', async () => {
    const cfg = tinyConfig({ numLayers: 6, hiddenSize: 256, numHeads: 8, numKvHeads: 2, headDim: 64, intermediateSize: 512 });
    const plan = presetPlan('ma', 6, { window: 24 });
    const seed = SEED % 100000;
    using gpu = makeEngine(cfg, plan, { seed, dtype: 'bf16', backend: TWIN, kvDtype: 'bf16', kvPages: 64 });
    using cpu = makeEngine(cfg, plan, { seed, dtype: 'bf16', backend: 'cpu', kvDtype: 'f32', kvPages: 64 });
    const tokens = Array.from({ length: 90 }, (_, i) => (i * 37 + seed) % cfg.vocabSize);
    const run = async (e: typeof gpu) => (await e.stepCapture([{ seq: e.addSequence(), tokens }])).attentionInputs;
    const [a, b] = [await run(gpu), await run(cpu)];
    expect(a.length).toBe(6 * 90 * 256);
    expectWithin('calibrate capture', relErr(a, b), bound('model'));
  });

  it('calibrate: ranks ≤ 16 within the budget; its measured errors are the written model’s', async () => {
    const cfg = tinyConfig();
    const standard = presetPlan('standard', cfg.numLayers);
    const model = writeTestModel(t.dir('m'), cfg, lowRankKv(testWeights(cfg, standard, { dtype: 'bf16' }), cfg, 16, 2e-3));
    const data = writeText(t.dir('calib.txt'), 30_000);
    const out = t.dir('out');
    const report = await calibrate({ model, data, out, samples: 8, seqLen: 64, backend: TWIN });
    expect(report.backend).toBe(TWIN);
    const samples = sampleTokens(readFileSync(data, 'utf8'), await Tokenizer.fromDir(model), 8, 64, data);
    const full = Array(cfg.numLayers).fill(cfg.headDim);
    const [before, after] = [await tensors(model), await tensors(out)];
    const y: Float64Array[][] = Array.from({ length: cfg.numLayers }, () => []);
    const yHat: Float64Array[][] = Array.from({ length: cfg.numLayers }, () => []);
    for (const tokens of samples) {
      const h: Float64Array[][] = [];
      eigenForward64(cfg, standard, before, tokens, { kRanks: full, vRanks: full, onLayer: (l, hl, yl) => { h[l] = [...hl]; y[l].push(...yl); } });
      eigenForward64(cfg, standard, after, tokens, {
        kRanks: report.layers.map((l) => l.k_rank), vRanks: report.layers.map((l) => l.v_rank), inputs: h,
        onLayer: (l, _, yl) => void yHat[l].push(...yl),
      });
    }
    const truth = layerErrors(y, yHat);
    report.layers.forEach((l, i) => {
      expect(l.k_rank).toBeLessThanOrEqual(16);
      expect(l.v_rank).toBeLessThanOrEqual(16);
      expect(l.error).toBeLessThanOrEqual(0.025);
      expectWithin(`calibrate measured error, layer ${i}`, Math.abs(l.error - truth[i]), bound('model') / 2);
    });
  });
});
