/** Structural views of a plan used by the plan tests. */
import type { LayerPlan } from '../../lib/plan/index.js';

export const globalLayers = (p: LayerPlan): number[] =>
  p.layers.flatMap((l, i) => (l.attention.kind === 'global' ? [i] : []));

export const ownerLayers = (p: LayerPlan): number[] => p.layers.flatMap((l, i) => (l.kvSource === i ? [i] : []));

/** Maximal stretches of consecutive sliding layers, as [first, length]. */
export function slidingStretches(p: LayerPlan): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  p.layers.forEach((l, i) => {
    if (l.attention.kind !== 'sliding') return;
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === i) last[1]++;
    else out.push([i, 1]);
  });
  return out;
}

/** Groups of consecutive sliding layers reading the same cache, as their layer lists. */
export function slidingRuns(p: LayerPlan): number[][] {
  const out: number[][] = [];
  p.layers.forEach((l, i) => {
    if (l.attention.kind !== 'sliding') return;
    const last = out[out.length - 1];
    const prev = last?.[last.length - 1];
    if (prev === i - 1 && p.layers[prev].kvSource === l.kvSource) last.push(i);
    else out.push([i]);
  });
  return out;
}

export const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, k) => a + k);
