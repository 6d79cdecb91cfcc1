/** Small builders shared by the reference tests. */
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan, LayerSpec } from '../../lib/plan/types.js';
import { randomWeights, weightMap } from '../../lib/model/random-weights.js';
import { referenceForward, type Weights } from './transformer64.js';

export const g = (src: number): LayerSpec => ({ attention: { kind: 'global' }, kvSource: src });
export const sw = (window: number, src: number): LayerSpec => ({ attention: { kind: 'sliding', window }, kvSource: src });
export const plan = (...layers: LayerSpec[]): LayerPlan => ({ name: 'custom', layers });
export const standardPlan = (n: number): LayerPlan => plan(...Array.from({ length: n }, (_, i) => g(i)));

/** A Llama-like config (SiLU, GQA 4:2, untied). */
export const llamaLike = (numLayers: number, extra: Partial<ModelConfig> = {}): ModelConfig =>
  llamaConfig({ vocabSize: 41, hiddenSize: 24, intermediateSize: 40, numLayers, numHeads: 4, numKvHeads: 2, headDim: 8, ...extra });

/** A Gemma-like config switching every optional feature on. */
export const gemmaLike = (numLayers: number, extra: Partial<ModelConfig> = {}): ModelConfig =>
  llamaConfig({
    vocabSize: 41, hiddenSize: 24, intermediateSize: 40, numLayers, numHeads: 4, numKvHeads: 1, headDim: 8,
    activation: 'gelu_tanh', tieWordEmbeddings: true, qkvBias: true, qkNorm: true, sandwichNorm: true,
    embeddingScale: Math.sqrt(24), attnScale: 0.3, attnSoftcap: 5, finalSoftcap: 3, rmsNormEps: 1e-6,
    ropeTheta: 1e6, ropeThetaLocal: 1e4, localRopeLayers: [0, 2],
    ...extra,
  });

export const weightsFor = (cfg: ModelConfig, p: LayerPlan, seed = 1): Map<string, Float32Array | Float64Array> =>
  weightMap(randomWeights(cfg, p, { seed, dtype: 'f32' }));

/** max |a−b| / max |b| over all positions. */
export function relDiff(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((row, p) => row.forEach((x, j) => {
    num = Math.max(num, Math.abs(x - b[p][j]));
    den = Math.max(den, Math.abs(b[p][j]));
  }));
  return num / den;
}

export const tokensOf = (n: number, vocab: number, salt = 0): number[] =>
  Array.from({ length: n }, (_, i) => (i * 17 + 5 + salt * 7) % vocab);

/** Greedy continuation by the float64 reference: n tokens, each the argmax (lowest index on ties) after the tokens so far. */
export function referenceGreedy(cfg: ModelConfig, p: LayerPlan, w: Weights, prompt: readonly number[], n: number): number[] {
  const tokens = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = referenceForward(cfg, p, w, tokens).at(-1)!;
    let best = 0;
    for (let t = 1; t < logits.length; t++) if (logits[t] > logits[best]) best = t;
    out.push(best);
    tokens.push(best);
  }
  return out;
}
