/**
 * Canonical weight names and shapes. Linear weights are [out, in] row-major (as in
 * PyTorch), so y = x · Wᵀ. Reader layers (kvSource ≠ own index) have no K/V projections.
 * RMSNorm weights multiply directly (Gemma's 1+w convention is folded in by loaders).
 *
 * Low-rank K/V (kv-widths.ts): an owner's k_proj/v_proj produce numKvHeads × kDim / vDim,
 * an owner with low-rank keys has `k_up` [headDim, kDim] (the basis U_k shared by its KV
 * heads), and every layer's o_proj takes numHeads × vDim of the cache it reads.
 */
import type { ModelConfig } from './config.js';
import type { LayerPlan } from '../plan/types.js';
import { layerKvWidths } from './kv-widths.js';

export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

export const layerWeight = (layer: number, what: string): string => `layers.${layer}.${what}`;

export function weightSpecs(cfg: ModelConfig, plan: LayerPlan): WeightSpec[] {
  if (plan.layers.length !== cfg.numLayers) {
    throw new Error(`plan has ${plan.layers.length} layers but the model config has numLayers=${cfg.numLayers}`);
  }
  const H = cfg.hiddenSize;
  const qDim = cfg.numHeads * cfg.headDim;
  const widths = layerKvWidths(cfg, plan);
  const specs: WeightSpec[] = [{ name: 'embed', shape: [cfg.vocabSize, H] }];
  plan.layers.forEach((layer, i) => {
    const { kDim: kRank, vDim: vRank, lowRankKeys } = widths[i];
    const w = (what: string, shape: number[]) => specs.push({ name: layerWeight(i, what), shape });
    w('attn_norm', [H]);
    w('q_proj', [qDim, H]);
    if (cfg.qkvBias) w('q_bias', [qDim]);
    if (layer.kvSource === i) {
      const kDim = cfg.numKvHeads * kRank;
      const vDim = cfg.numKvHeads * vRank;
      w('k_proj', [kDim, H]);
      if (lowRankKeys) w('k_up', [cfg.headDim, kRank]);
      w('v_proj', [vDim, H]);
      if (cfg.qkvBias) {
        w('k_bias', [kDim]);
        w('v_bias', [vDim]);
      }
      if (cfg.qkNorm) w('k_norm', [cfg.headDim]);
    }
    if (cfg.qkNorm) w('q_norm', [cfg.headDim]);
    w('o_proj', [H, cfg.numHeads * vRank]);
    if (cfg.sandwichNorm) w('post_attn_norm', [H]);
    w('mlp_norm', [H]);
    w('gate_proj', [cfg.intermediateSize, H]);
    w('up_proj', [cfg.intermediateSize, H]);
    w('down_proj', [H, cfg.intermediateSize]);
    if (cfg.sandwichNorm) w('post_mlp_norm', [H]);
  });
  specs.push({ name: 'final_norm', shape: [H] });
  if (!cfg.tieWordEmbeddings) specs.push({ name: 'lm_head', shape: [cfg.vocabSize, H] });
  return specs;
}
