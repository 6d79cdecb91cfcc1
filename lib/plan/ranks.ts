/**
 * Low-rank K/V on an existing plan (Eigen Attention): kvRank set on owners and repeated on
 * their readers, as validatePlan requires. Used to run any preset low-rank (tests,
 * benchmarks, `inspect --kv-rank`).
 */
import type { KvRank, LayerPlan } from './types.js';

/**
 * The plan with kvRank `rank` on every owner — one rank for all, or one per owner layer
 * (undefined: full width) — and each reader carrying its source's. Windows and sources are
 * unchanged; the result is not validated (ranks may exceed a head width the plan cannot know).
 */
export function withKvRank(plan: LayerPlan, rank: KvRank | ((owner: number) => KvRank | undefined), name = plan.name): LayerPlan {
  const of = typeof rank === 'function' ? rank : () => rank;
  const owned = plan.layers.map((l, i) => (l.kvSource === i ? of(i) : undefined));
  return {
    name,
    layers: plan.layers.map((l) => {
      const { kvRank: _old, ...rest } = l;
      const r = owned[l.kvSource];
      return r === undefined ? rest : { ...rest, kvRank: { k: r.k, v: r.v } };
    }),
  };
}

/** The plan at full width: every kvRank removed. */
export const withoutKvRank = (plan: LayerPlan, name = plan.name): LayerPlan => withKvRank(plan, () => undefined, name);

/** 'k32v48', or '' for full width. */
export const kvRankText = (r: KvRank | undefined): string => (r ? `k${r.k}v${r.v}` : '');
