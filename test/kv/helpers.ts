/** Plans and brute-force references shared by the KV tests. */
import { parsePlan } from '../../lib/plan/notation.js';
import { presetPlan } from '../../lib/plan/presets.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import type { KvLayout } from '../../lib/kv/layout.js';

/** The 22-layer "MixAttention-Pairs" encoding quoted in DESIGN.md, with window w. */
export const maPairs22 = (w: number): LayerPlan =>
  parsePlan(`w=${w} 0 1s 1s 3s 3s 3s 0 7s 7s 9s 9s 9s 12 13s 13s 15s 15s 15s 12 19s 19s 19s`, { name: 'ma-pairs-22' });

/** A plan where classes differ by window and by (low-rank) width; headDim 64. */
export const eigenMix = (): LayerPlan =>
  parsePlan('0:k32v32 0:k32v32 2s40 2s40 4s24 5 6s40:k16v8 6s20:k16v8', { name: 'eigen-mix', headDim: 64 });

/** Plans of every shape the allocator must serve, with a small window so n can pass it. */
export function testPlans(window: number): LayerPlan[] {
  const presets = ['standard', 'sliding', 'ma', 'ma-pairs', 'ma-offset', 'cla2', 'characterai', 'gemma3'];
  return [...presets.map((p) => presetPlan(p, 12, { window })), maPairs22(window)];
}

/**
 * Blocks a class holds for the step writing [p, p+k), counted position by position: the
 * blocks of every position that is written or attended by a written position.
 */
export function bruteHeld(window: number, blockSize: number, p: number, k: number): number {
  const from = window === 0 ? 0 : Math.max(0, p - window + 1);
  const blocks = new Set<number>();
  for (let q = from; q < p + k; q++) blocks.add(Math.floor(q / blockSize));
  return blocks.size;
}

/** Steps [p, k) of growth to n in chunks. */
export function steps(n: number, chunk: number): [number, number][] {
  const out: [number, number][] = [];
  for (let p = 0; p < n; p += chunk) out.push([p, Math.min(chunk, n - p)]);
  return out;
}

/** Max over steps of Σ weight(class) × bruteHeld. */
export function brutePeak(layout: KvLayout, n: number, chunk: number, weight: (c: number) => number): number {
  let best = 0;
  for (const [p, k] of steps(n, chunk)) {
    let t = 0;
    for (const c of layout.classes) t += weight(c.id) * bruteHeld(c.window, layout.blockSize, p, k);
    best = Math.max(best, t);
  }
  return best;
}
