/**
 * Whole models on the GPU against the same models on the CPU: the engine (lib/engine) with
 * backend 'cuda' (bf16 activations, bf16 KV) vs 'cpu' (fp32 activations, f32 KV), same bf16
 * weights, several presets, ragged batches fed whole, in chunks and token by token.
 *
 * Bound: ‖cuda − cpu‖/‖cpu‖ over all logits ≤ 2 × PyTorch's own bf16 error on whole models:
 * test/gpu/torch_bf16_bounds.py runs the HF fixtures (test/fixtures/hf, tiny random models of
 * each architecture) in bf16 and fp32 on the GPU and records the worst relative logit error
 * ('model'). bf16 activations round every layer's residual stream, so errors of 1e-2 are what
 * a bf16 engine gives; a wrong kernel gives errors of order 1.
 */
import { describe, expect, it } from 'vitest';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { engineLogits, makeEngine, type Schedule } from '../engine/harness.js';
import { gemmaLike } from '../reference/helpers.js';
import { twinVsCpu, tokens } from './engine-compare.js';
import { SEED, TWIN, bound, cudaAvailable, expectWithin } from './twin.js';

function compare(cfg: ModelConfig, preset: string, window: number, prompts: number[][], schedules: Schedule[]): Promise<number> {
  return twinVsCpu(cfg, presetPlan(preset, cfg.numLayers, { window }), prompts, schedules);
}

describe.skipIf(!cudaAvailable)(`whole model: CUDA engine vs CPU engine (${TWIN}, seed ${SEED})`, () => {
  const llama = llamaConfig({ vocabSize: 512, hiddenSize: 256, intermediateSize: 688, numLayers: 6, numHeads: 8, numKvHeads: 2, headDim: 64 });
  for (const preset of ['standard', 'ma', 'ma-pairs', 'gemma3', 'cla2', 'sliding']) {
    it(`llama-like d64 GQA 8:2, ${preset}, window 24`, async () => {
      const prompts = [tokens(70, 512, 1), tokens(45, 512, 2), tokens(9, 512, 3)];
      const err = await compare(llama, preset, 24, prompts, ['whole', { chunk: 16 }, 'decode']);
      expectWithin(`model ${preset}`, err, bound('model'));
    });
  }

  it('d128 MQA 4:1, characterai, window 40, chunked and token-by-token', async () => {
    const cfg = llamaConfig({ vocabSize: 300, hiddenSize: 512, intermediateSize: 1024, numLayers: 6, numHeads: 4, numKvHeads: 1, headDim: 128 });
    const prompts = [tokens(100, 300, 4), tokens(33, 300, 5)];
    const err = await compare(cfg, 'characterai', 40, prompts, [{ pattern: [37, 1, 20] }, 'decode']);
    expectWithin('model d128 characterai', err, bound('model'));
  });

  it('Gemma-like (every switch: soft-caps, q/k norm, sandwich norms, GeGLU, tied), head dim 8', async () => {
    const cfg = gemmaLike(6);
    const prompts = [tokens(30, cfg.vocabSize, 6), tokens(12, cfg.vocabSize, 7)];
    const err = await compare(cfg, 'gemma3', 5, prompts, ['whole', { chunk: 4 }]);
    expectWithin('model gemma-like', err, bound('model'));
  });
});

describe.skipIf(!cudaAvailable || TWIN === 'cpu')('CUDA engine errors', () => {
  const cfg = llamaConfig({ vocabSize: 64, hiddenSize: 128, intermediateSize: 256, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 64 });
  const plan = presetPlan('standard', 2);

  it('out of GPU memory is a clear error; the next engine works', async () => {
    expect(() => makeEngine(cfg, plan, { backend: 'cuda', kvDtype: 'bf16', kvPages: 100_000_000 })).toThrow(/out of GPU memory allocating KV cache \(\d+ bytes\)/);
    using engine = makeEngine(cfg, plan, { backend: 'cuda', kvDtype: 'bf16', kvPages: 64 });
    const [l] = await engineLogits(engine, [tokens(20, 64, 1)], ['whole']);
    expect(l.every((row) => row.every(Number.isFinite))).toBe(true);
  });

  it('a bad token fails the step; the engine stays usable', async () => {
    using engine = makeEngine(cfg, plan, { backend: 'cuda', kvDtype: 'bf16', kvPages: 64 });
    const seq = engine.addSequence();
    await expect(engine.step([{ seq, tokens: [1, 2, 64] }])).rejects.toThrow(/token id 64 at index 2/);
    engine.releaseSequence(seq);
    const [l] = await engineLogits(engine, [tokens(9, 64, 2)], [{ chunk: 4 }]);
    expect(l).toHaveLength(9);
  });
});
