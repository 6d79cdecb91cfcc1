/**
 * The widths of the cached K/V each layer reads (Eigen Attention, docs/kv.md): its source's
 * plan kvRank, or the full head width. A source whose keys are narrower than the head keeps
 * them as coefficients c (per KV head) of the pre-RoPE key in a basis U_k, the `k_up` weight
 * [headDim, kDim]; attention expands k = U_k·c and rotates it. Values at rank vDim stay at
 * that width up to o_proj, whose input is numHeads × vDim.
 */
import type { ModelConfig } from './config.js';
import type { LayerPlan } from '../plan/types.js';

export interface LayerKvWidths {
  /** Per KV head: width of the cached keys (coefficients when lowRankKeys). */
  readonly kDim: number;
  /** Per KV head: width of the cached values, and of each head's attention output. */
  readonly vDim: number;
  /** Keys cached pre-RoPE in the source's basis k_up (kDim < headDim). */
  readonly lowRankKeys: boolean;
}

/**
 * Per layer (readers included), the widths of the cache it reads. Throws naming the layer
 * when a rank is outside [1, headDim] or low-rank keys meet q/k norms (the norm acts on the
 * full key, so it cannot be applied to coefficients).
 */
export function layerKvWidths(cfg: ModelConfig, plan: LayerPlan): LayerKvWidths[] {
  const hd = cfg.headDim;
  return plan.layers.map((layer, i) => {
    const src = plan.layers[layer.kvSource];
    if (src === undefined) throw new Error(`layer ${i}: kvSource ${layer.kvSource} is not a layer`);
    const kDim = src.kvRank?.k ?? hd;
    const vDim = src.kvRank?.v ?? hd;
    for (const [what, r] of [['k', kDim], ['v', vDim]] as const) {
      if (!Number.isInteger(r) || r < 1 || r > hd) {
        throw new Error(`layer ${i}: kvRank.${what} ${String(r)} must be an integer in [1, headDim=${hd}]`);
      }
    }
    const lowRankKeys = kDim < hd;
    if (lowRankKeys && cfg.qkNorm) {
      throw new Error(`layer ${i}: low-rank keys (kvRank.k ${kDim} < headDim ${hd}) cannot be used with q/k norms (qkNorm)`);
    }
    return { kDim, vDim, lowRankKeys };
  });
}

/** True when some layer keeps K or V narrower than the head. */
export const hasLowRankKv = (cfg: ModelConfig, plan: LayerPlan): boolean =>
  plan.layers.some((l) => l.kvRank !== undefined && (l.kvRank.k < cfg.headDim || l.kvRank.v < cfg.headDim));
