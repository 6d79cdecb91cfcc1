/**
 * The engine (CPU backend through the addon) against the float64 reference transformer:
 * every preset, GQA/MQA, odd sizes, every architecture switch, windows shorter and longer
 * than the prompt, ragged batches, and whole vs chunked vs token-by-token prefill.
 */
import { describe, expect, it } from 'vitest';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { randomWeights, weightMap } from '../../lib/model/random-weights.js';
import { PRESET_NAMES, presetPlan } from '../../lib/plan/presets.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { referenceForward } from '../reference/transformer64.js';
import { gemmaLike, llamaLike, relDiff, tokensOf } from '../reference/helpers.js';
import { engineLogits, makeEngine, type Schedule } from './harness.js';

const TOL = 1e-4;

async function checkAgainstReference(
  cfg: ModelConfig,
  plan: LayerPlan,
  prompts: number[][],
  schedules: Schedule[],
  opts: { dtype?: 'f32' | 'bf16'; kvDtype?: 'f32' | 'bf16'; tol?: number } = {},
): Promise<number> {
  const weights = randomWeights(cfg, plan, { seed: 7, dtype: opts.dtype ?? 'f32' });
  const refWeights = weightMap(weights);
  using engine = makeEngine(cfg, plan, { seed: 7, dtype: opts.dtype, kvDtype: opts.kvDtype });
  const got = await engineLogits(engine, prompts, schedules);
  let worst = 0;
  prompts.forEach((p, i) => {
    const ref = referenceForward(cfg, plan, refWeights, p);
    expect(got[i]).toHaveLength(p.length);
    worst = Math.max(worst, relDiff(got[i], ref));
  });
  expect(worst).toBeLessThan(opts.tol ?? TOL);
  // Every block is back in the pool once the sequences end.
  expect(engine.blocks.usedPages).toBe(0);
  return worst;
}

describe('engine vs float64 reference', () => {
  const cfg = llamaLike(13);
  for (const name of PRESET_NAMES) {
    for (const window of [6, 64]) {
      it(`${name}, window ${window} (${window < 23 ? 'shorter' : 'longer'} than the prompt)`, async () => {
        const plan = presetPlan(name, cfg.numLayers, { window });
        await checkAgainstReference(cfg, plan, [tokensOf(23, cfg.vocabSize)], ['whole']);
      });
    }
  }

  it('MQA with odd sizes (5 heads over 1 KV head, head dim 6, vocab 53)', async () => {
    const odd = llamaConfig({ vocabSize: 53, hiddenSize: 30, intermediateSize: 46, numLayers: 6, numHeads: 5, numKvHeads: 1, headDim: 6 });
    await checkAgainstReference(odd, presetPlan('ma', 6, { window: 5 }), [tokensOf(19, 53, 1)], ['whole']);
  });

  it('GQA 6:3 with head dim wider than hidden/heads', async () => {
    const gqa = llamaConfig({ vocabSize: 61, hiddenSize: 32, intermediateSize: 48, numLayers: 5, numHeads: 6, numKvHeads: 3, headDim: 10 });
    await checkAgainstReference(gqa, presetPlan('cla2', 5), [tokensOf(17, 61, 2)], ['whole']);
  });

  it('every architecture switch at once (Gemma-like: sandwich norms, q/k norm, biases, soft-caps, GeGLU, tied, local RoPE)', async () => {
    const gem = gemmaLike(6);
    await checkAgainstReference(gem, presetPlan('gemma3', 6, { window: 4 }), [tokensOf(15, gem.vocabSize, 3)], [{ chunk: 4 }]);
  });

  it('llama3 and linear RoPE scaling', async () => {
    const l3 = llamaLike(3, {
      ropeTheta: 500000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
    });
    await checkAgainstReference(l3, presetPlan('standard', 3), [tokensOf(40, l3.vocabSize, 4)], ['whole']);
    const lin = llamaLike(3, { ropeScaling: { type: 'linear', factor: 2.5 } });
    await checkAgainstReference(lin, presetPlan('standard', 3), [tokensOf(21, lin.vocabSize, 5)], ['whole']);
  });

  it('whole, chunked and token-by-token prefill in one ragged batch', async () => {
    const plan = presetPlan('ma-pairs', cfg.numLayers, { window: 5 });
    const prompts = [tokensOf(29, cfg.vocabSize, 1), tokensOf(7, cfg.vocabSize, 2), tokensOf(18, cfg.vocabSize, 3), tokensOf(33, cfg.vocabSize, 4)];
    await checkAgainstReference(cfg, plan, prompts, ['whole', 'decode', { chunk: 4 }, { pattern: [16, 1, 3, 2] }]);
  });

  it('blocks of 16 crossed by chunks of every size, sliding classes returning blocks', async () => {
    const plan = presetPlan('characterai', cfg.numLayers, { window: 17 });
    const prompts = [tokensOf(70, cfg.vocabSize, 6), tokensOf(53, cfg.vocabSize, 7)];
    await checkAgainstReference(cfg, plan, prompts, [{ pattern: [1, 15, 2, 16, 17, 5] }, 'decode']);
  });

  it('bf16 weights are exact against the reference fed the same rounded values', async () => {
    const plan = presetPlan('ma', cfg.numLayers, { window: 6 });
    await checkAgainstReference(cfg, plan, [tokensOf(21, cfg.vocabSize, 8)], [{ chunk: 5 }], { dtype: 'bf16' });
  });

  it('bf16 KV storage stays close (lossy by design)', async () => {
    const plan = presetPlan('ma', cfg.numLayers, { window: 6 });
    const err = await checkAgainstReference(cfg, plan, [tokensOf(21, cfg.vocabSize, 9)], ['decode'], { kvDtype: 'bf16', tol: 2e-2 });
    expect(err).toBeGreaterThan(0); // rounding really happened
  });
});
