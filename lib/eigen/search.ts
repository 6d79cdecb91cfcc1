/**
 * The rank choice of one KV cache, as the Eigen Attention authors make it: a threshold on the
 * normalised singular-value mass starts at 1.0 (full rank) and is lowered in steps of 0.02;
 * each threshold gives the smallest ranks whose mass reaches it (keys: the shared basis;
 * values: the largest over the KV heads, so every head keeps its mass), rounded up to a
 * multiple of 8; the lowest threshold whose output error, worst over the layers reading the
 * cache, stays within the budget wins. Ranks only shrink as the threshold falls, and rounding
 * makes many thresholds share ranks: each distinct pair is measured once.
 */
import { rankForThreshold, roundRank } from './basis.js';

export const THRESHOLD_STEP = 0.02;

export interface SearchStep {
  readonly threshold: number;
  readonly kRank: number;
  readonly vRank: number;
  /** Worst reader's relative output error at these ranks. */
  readonly error: number;
}

export interface RankChoice {
  readonly kRank: number;
  readonly vRank: number;
  /** The lowest threshold giving these ranks within the budget (1 when none lower did). */
  readonly threshold: number;
  /** Each reader's error at these ranks. */
  readonly errors: ReadonlyMap<number, number>;
  /**
   * The search, one entry per new pair of ranks (at the highest threshold giving it), in
   * order; the last one failed the budget unless the search reached the lowest threshold.
   */
  readonly steps: readonly SearchStep[];
}

/** Ranks at a threshold: the shared key basis's, and the largest of the value bases'. */
export function ranksAt(keyMass: Float64Array, valueMass: readonly Float64Array[], threshold: number, headDim: number): { kRank: number; vRank: number } {
  const kRank = roundRank(rankForThreshold(keyMass, threshold), headDim);
  const vRank = Math.max(...valueMass.map((m) => roundRank(rankForThreshold(m, threshold), headDim)));
  return { kRank, vRank };
}

/**
 * Lowers the threshold while the worst reader's error stays within `budget`. `errorsAt` gives
 * each reader's error at a pair of ranks below full (full ranks are the model itself: 0).
 */
export function searchRanks(
  keyMass: Float64Array,
  valueMass: readonly Float64Array[],
  headDim: number,
  budget: number,
  readers: readonly number[],
  errorsAt: (kRank: number, vRank: number) => ReadonlyMap<number, number>,
): RankChoice {
  const measured = new Map<string, ReadonlyMap<number, number>>();
  const measure = (kRank: number, vRank: number): ReadonlyMap<number, number> => {
    const id = `${kRank}/${vRank}`;
    if (!measured.has(id)) {
      measured.set(id, kRank === headDim && vRank === headDim ? new Map(readers.map((j) => [j, 0])) : errorsAt(kRank, vRank));
    }
    return measured.get(id)!;
  };
  const worst = (errs: ReadonlyMap<number, number>): number => Math.max(...errs.values());

  let chosen = { threshold: 1, kRank: headDim, vRank: headDim, errors: measure(headDim, headDim) };
  const steps: SearchStep[] = [];
  const n = Math.round(1 / THRESHOLD_STEP);
  for (let k = 0; k < n; k++) {
    const threshold = (n - k) / n; // exact multiples of the step, no drift
    const { kRank, vRank } = ranksAt(keyMass, valueMass, threshold, headDim);
    const errors = measure(kRank, vRank);
    const last = steps[steps.length - 1];
    if (!last || last.kRank !== kRank || last.vRank !== vRank) steps.push({ threshold, kRank, vRank, error: worst(errors) });
    if (worst(errors) > budget) break;
    chosen = { threshold, kRank, vRank, errors };
  }
  return { ...chosen, steps };
}
