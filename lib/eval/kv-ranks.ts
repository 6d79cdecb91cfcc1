/**
 * The K/V widths a model caches (Eigen Attention, contracts section B): per cache-owning
 * layer the key and value rank (head_dim where the plan keeps them full), their mean / min /
 * max over the owners, and the calibration's error budget from config.json eigen_attention.
 */
import type { ModelConfig } from '../model/config.js';
import { layerKvWidths } from '../model/kv-widths.js';
import type { LayerPlan } from '../plan/types.js';

export interface RankStats {
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

export interface KvRanks {
  readonly headDim: number;
  /** The cache-owning layers, and their key / value ranks in the same order. */
  readonly owners: readonly number[];
  readonly kRanks: readonly number[];
  readonly vRanks: readonly number[];
  /** Over the owners (each cache counted once, as the KV bytes count it). */
  readonly k: RankStats;
  readonly v: RankStats;
  /** config.json eigen_attention.error_budget, when the checkpoint is calibrated low-rank. */
  readonly errorBudget?: number;
}

const stats = (xs: readonly number[]): RankStats => ({
  mean: xs.reduce((a, b) => a + b, 0) / xs.length,
  min: Math.min(...xs),
  max: Math.max(...xs),
});

export function kvRanks(config: ModelConfig, plan: LayerPlan, errorBudget?: number): KvRanks {
  const widths = layerKvWidths(config, plan);
  const owners = plan.layers.flatMap((l, i) => (l.kvSource === i ? [i] : []));
  const kRanks = owners.map((i) => widths[i].kDim);
  const vRanks = owners.map((i) => widths[i].vDim);
  return {
    headDim: config.headDim,
    owners,
    kRanks,
    vRanks,
    k: stats(kRanks),
    v: stats(vRanks),
    ...(errorBudget !== undefined ? { errorBudget } : {}),
  };
}
