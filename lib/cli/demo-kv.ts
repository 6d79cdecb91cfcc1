/**
 * KV figures for `mixattn demo`: what a sequence's caches hold under the memory model (lib/kv)
 * when it grows as the engine grew it (the prompt in prefill chunks, then one token a step),
 * for the model's own plan and for every preset over the same model shape.
 */
import { heldBlocks, kvLayout, type KvLayout } from '../kv/index.js';
import { formatPlan } from '../plan/notation.js';
import { PRESET_NAMES, presetPlan } from '../plan/presets.js';
import type { LayerPlan } from '../plan/types.js';

/**
 * Step sizes of one generation: the prompt in chunks of `prefillChunk`, then one step per
 * generated token but the last (the last sampled token is never written to the cache).
 */
export function generationSteps(promptTokens: number, generatedTokens: number, prefillChunk: number): number[] {
  const steps: number[] = [];
  for (let p = 0; p < promptTokens; p += prefillChunk) steps.push(Math.min(prefillChunk, promptTokens - p));
  for (let i = 1; i < generatedTokens; i++) steps.push(1);
  return steps;
}

/** Most pages one sequence holds while growing by `steps` (classes summed at each step). */
export function peakPages(layout: KvLayout, steps: readonly number[]): number {
  let p = 0;
  let best = 0;
  for (const k of steps) {
    let pages = 0;
    for (const c of layout.classes) pages += heldBlocks(c.window, layout.blockSize, p, k) * c.pagesPerBlock;
    best = Math.max(best, pages);
    p += k;
  }
  return best;
}

/** The sliding window of a plan's first sliding layer (undefined when all are global). */
export function planWindow(plan: LayerPlan): number | undefined {
  for (const l of plan.layers) if (l.attention.kind === 'sliding') return l.attention.window;
  return undefined;
}

/** The preset a checkpoint's plan equals at its layer count and window, if any. */
export function presetNameOf(plan: LayerPlan): string | undefined {
  const window = planWindow(plan);
  const text = formatPlan(plan);
  return PRESET_NAMES.find((name) => formatPlan(presetPlan(name, plan.layers.length, { window })) === text);
}

export interface PlanKv {
  readonly name: string;
  /** The plan the model ran (the others are the memory model's figures only). */
  readonly run: boolean;
  /** Owning layers: caches a token is written to. */
  readonly caches: number;
  readonly plan: LayerPlan;
  readonly layout: KvLayout;
}

/**
 * The model's plan first, then every preset over its layer count and window (a preset equal
 * to the model's plan is not repeated), each with its KV layout in the engine's page format.
 */
export function comparedPlans(
  own: LayerPlan,
  ownName: string,
  shape: { numKvHeads: number; headDim: number; blockSize: number; dtypeBytes: number },
): PlanKv[] {
  const window = planWindow(own);
  const entry = (name: string, plan: LayerPlan, run: boolean): PlanKv => ({
    name,
    run,
    caches: plan.layers.filter((l, i) => l.kvSource === i).length,
    plan,
    layout: kvLayout(plan, shape),
  });
  const ownText = formatPlan(own);
  const others = PRESET_NAMES.map((name) => presetPlan(name, own.layers.length, { window })).filter((p) => formatPlan(p) !== ownText);
  return [entry(ownName, own, true), ...others.map((p) => entry(p.name, p, false))];
}
