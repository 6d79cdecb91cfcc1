/**
 * What a model costs, from its config and plan alone: parameter count, the preset its layout
 * equals, and the KV bytes one sequence holds (lib/kv's memory model) against `standard` on
 * the same config.
 */
import type { ModelConfig } from '../model/config.js';
import { weightSpecs } from '../model/weights.js';
import type { LayerPlan } from '../plan/types.js';
import { formatPlan } from '../plan/notation.js';
import { PRESET_NAMES, presetPlan } from '../plan/presets.js';
import { kvLayout } from '../kv/layout.js';
import { kvBytesAtContext, kvBytesPerToken } from '../kv/memory-model.js';

export interface PlanInfo {
  /** The first preset whose layout the plan equals (low-rank widths aside), or 'custom'. */
  readonly preset: string;
  /** Every preset it equals (some coincide at some layer counts, e.g. ma-endslide = characterai at L = 12). */
  readonly equals: readonly string[];
  /** The plan in canonical notation. */
  readonly notation: string;
  /** Some layer keeps K/V in a low-rank space. */
  readonly lowRank: boolean;
  /** The sliding window, when the plan has sliding layers of one window. */
  readonly window?: number;
}

export interface KvCost {
  readonly dtype: 'bf16';
  readonly blockSize: number;
  /** Bytes one token costs while it is in every owning layer's cache. */
  readonly bytesPerToken: number;
  /** Pool bytes one sequence holds at its peak growing token by token to 1024 / to maxContext. */
  readonly bytesAt1024: number;
  readonly maxContext: number;
  readonly bytesAtMax: number;
  readonly standardAt1024: number;
  readonly standardAtMax: number;
  /** bytesAt1024 / standardAt1024, bytesAtMax / standardAtMax. */
  readonly vsStandardAt1024: number;
  readonly vsStandardAtMax: number;
}

export const KV_BLOCK_SIZE = 16;

export function parameterCount(config: ModelConfig, plan: LayerPlan): number {
  return weightSpecs(config, plan).reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
}

const withoutRanks = (plan: LayerPlan): LayerPlan => ({ name: plan.name, layers: plan.layers.map(({ attention, kvSource }) => ({ attention, kvSource })) });

export function planInfo(plan: LayerPlan): PlanInfo {
  const windows = new Set(plan.layers.flatMap((l) => (l.attention.kind === 'sliding' ? [l.attention.window] : [])));
  const window = windows.size === 1 ? [...windows][0] : undefined;
  const target = formatPlan(withoutRanks(plan));
  const L = plan.layers.length;
  const equals = PRESET_NAMES.filter((name) => formatPlan(presetPlan(name, L, { window })) === target);
  return {
    preset: equals[0] ?? 'custom',
    equals,
    notation: formatPlan(plan),
    lowRank: plan.layers.some((l) => l.kvRank !== undefined),
    ...(window !== undefined ? { window } : {}),
  };
}

/** KV bytes per sequence in bf16 pages of 16 tokens (as served on the GPU), token-by-token growth. */
export function kvCost(config: ModelConfig, plan: LayerPlan, maxContext: number): KvCost {
  const opts = { numKvHeads: config.numKvHeads, headDim: config.headDim, blockSize: KV_BLOCK_SIZE, dtypeBytes: 2 };
  const layout = kvLayout(plan, opts);
  const standard = kvLayout(presetPlan('standard', plan.layers.length), opts);
  const at = (n: number) => ({ own: kvBytesAtContext(layout, n), std: kvBytesAtContext(standard, n) });
  const a = at(1024);
  const m = at(maxContext);
  return {
    dtype: 'bf16',
    blockSize: KV_BLOCK_SIZE,
    bytesPerToken: kvBytesPerToken(layout),
    bytesAt1024: a.own,
    maxContext,
    bytesAtMax: m.own,
    standardAt1024: a.std,
    standardAtMax: m.std,
    vsStandardAt1024: a.own / a.std,
    vsStandardAtMax: m.own / m.std,
  };
}
