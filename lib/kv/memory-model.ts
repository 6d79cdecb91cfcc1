/**
 * The KV memory model: the one place that says how many bytes, blocks and pages a plan's
 * caches take. The block manager allocates by these formulas, and the scheduler and reports
 * plan with them, so what they promise is what the allocator does (docs/kv.md).
 *
 * Growth model: a sequence grows to length n in steps of exactly `chunk` tokens from
 * position 0 (the last step possibly shorter). Before the step that writes [p, p+k), a class
 * holds the blocks covering [firstLive(p), p+k): a sliding class with window W has returned
 * every block below the first position that any position >= p attends, max(0, p-W+1);
 * a global class holds everything from 0.
 */
import { checkInt, type KvLayout } from './layout.js';

/** First block a class must hold when the sequence's next position is p (window 0 = global). */
export function firstLiveBlock(window: number, blockSize: number, p: number): number {
  return window === 0 || p < window ? 0 : Math.floor((p - window + 1) / blockSize);
}

/** Blocks a class holds right after reserving [p, p+k): those covering [firstLive(p), p+k). */
export function heldBlocks(window: number, blockSize: number, p: number, k: number): number {
  return Math.max(0, Math.ceil((p + k) / blockSize) - firstLiveBlock(window, blockSize, p));
}

/** Bytes one token costs in one class: Σ over its owners of numKvHeads × (kDim + vDim) × dtypeBytes. */
export function classBytesPerToken(layout: KvLayout, classId: number): number {
  const c = layout.classes[classId];
  if (c === undefined) throw new RangeError(`classId ${String(classId)} is not a class of this layout`);
  let width = 0;
  for (const p of c.placements) width += p.kDim + p.vDim;
  return layout.numKvHeads * width * layout.dtypeBytes;
}

/**
 * Bytes of page one token takes in one class: pagesPerBlock × pageBytes / blockSize. More
 * than classBytesPerToken when the class's owners leave part of their pages empty.
 */
export function classPageBytesPerToken(layout: KvLayout, classId: number): number {
  const c = layout.classes[classId];
  if (c === undefined) throw new RangeError(`classId ${String(classId)} is not a class of this layout`);
  return (c.pagesPerBlock * layout.pageBytes) / layout.blockSize;
}

/** Bytes one token costs while it is in every owning layer's cache (all classes). */
export function kvBytesPerToken(layout: KvLayout): number {
  let sum = 0;
  for (const c of layout.classes) sum += classBytesPerToken(layout, c.id);
  return sum;
}

/** Most blocks class `classId` holds for one sequence growing to n in steps of `chunk`. */
export function peakBlocks(layout: KvLayout, classId: number, n: number, chunk = 1): number {
  if (layout.classes[classId] === undefined) {
    throw new RangeError(`classId ${String(classId)} is not a class of this layout`);
  }
  const weights = layout.classes.map((c) => (c.id === classId ? 1 : 0));
  return peakOverSteps(layout, weights, n, chunk);
}

/**
 * Most pages one sequence holds while growing to n in steps of `chunk`: the peak of the sum
 * over classes (classes may peak at different steps, so this can be less than the sum of
 * their peakBlocks × pagesPerBlock).
 */
export function pagesPerSequence(layout: KvLayout, n: number, chunk = 1): number {
  return peakOverSteps(layout, layout.classes.map((c) => c.pagesPerBlock), n, chunk);
}

/** Bytes of the pool one sequence holds at its peak while growing to n (whole pages). */
export function kvBytesAtContext(layout: KvLayout, n: number, chunk = 1): number {
  return pagesPerSequence(layout, n, chunk) * layout.pageBytes;
}

/** Pages a pool of `budgetBytes` holds. */
export function pagesInBudget(layout: KvLayout, budgetBytes: number): number {
  checkInt('budgetBytes', budgetBytes, 0);
  return Math.floor(budgetBytes / layout.pageBytes);
}

/** Most sequences that can grow to n together (in lockstep) within `budgetBytes`. */
export function maxConcurrentSequences(layout: KvLayout, n: number, budgetBytes: number, chunk = 1): number {
  checkInt('n', n, 1);
  return Math.floor(pagesInBudget(layout, budgetBytes) / pagesPerSequence(layout, n, chunk));
}

/**
 * max over steps j of Σ_c weights[c] × heldBlocks(c, p_j, k_j), p_j = j·chunk.
 * Cheap: once p_j is past every window, a sliding class's count repeats with period
 * P = blockSize / gcd(blockSize, chunk) steps (P·chunk is a multiple of blockSize) while
 * global counts only grow, so among the full steps only the last P can hold the maximum.
 */
function peakOverSteps(layout: KvLayout, weights: readonly number[], n: number, chunk: number): number {
  checkInt('n', n, 0);
  checkInt('chunk', chunk, 1);
  const B = layout.blockSize;
  const steps = Math.ceil(n / chunk);
  const period = B / gcd(B, chunk);
  let maxWindow = 0;
  for (const c of layout.classes) if (weights[c.id] > 0) maxWindow = Math.max(maxWindow, c.window);
  let best = 0;
  for (let j = 0; j < steps; j++) {
    if (j * chunk >= maxWindow - 1 && j < steps - 1 - period) j = steps - 1 - period;
    const p = j * chunk;
    const k = Math.min(chunk, n - p);
    let total = 0;
    for (const c of layout.classes) {
      if (weights[c.id] > 0) total += weights[c.id] * heldBlocks(c.window, B, p, k);
    }
    best = Math.max(best, total);
  }
  return best;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
