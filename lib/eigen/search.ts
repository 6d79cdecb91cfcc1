/**
 * The rank choice of one KV cache, as the Eigen Attention authors make it: a threshold on the
 * normalised singular-value mass starts at 1.0 (full rank) and is lowered in steps of 0.02;
 * each threshold gives the smallest ranks whose mass reaches it (keys: the shared basis;
 * values: the largest over the KV heads, so every head keeps its mass), rounded up to a
 * multiple of 8; the lowest threshold whose output error, worst over the layers reading the
 * cache, stays within the budget wins. Ranks only shrink as the threshold falls, and rounding
 * makes many thresholds share ranks: each distinct pair is measured once.
 */
import { leadingVectors, rankForThreshold, roundRank, singularMass, type Basis } from './basis.js';
import type { CacheGroup } from './cache-group.js';
import { projector } from './fold.js';

export const THRESHOLD_STEP = 0.02;

export interface SearchStep {
  readonly threshold: number;
  readonly kRank: number;
  readonly vRank: number;
  /** Worst reader's relative output error at these ranks. */
  readonly error: number;
}

export interface CacheCalibration {
  readonly owner: number;
  readonly readers: readonly number[];
  readonly keyBasis: Basis;
  readonly valueBases: readonly Basis[];
  readonly kRank: number;
  readonly vRank: number;
  /** The threshold the ranks come from (1 when nothing lower kept the error in budget). */
  readonly threshold: number;
  /** Worst reader's error at the chosen ranks (projected K/V, float weights). */
  readonly error: number;
  readonly readerErrors: ReadonlyMap<number, number>;
  /**
   * The search, one entry per new pair of ranks (the highest threshold giving it), in order;
   * the last one failed the budget unless the search reached the lowest threshold.
   */
  readonly steps: readonly SearchStep[];
}

/** Ranks at a threshold: the shared key basis's, and the largest of the value bases'. */
export function ranksAt(keyMass: Float64Array, valueMass: readonly Float64Array[], threshold: number, headDim: number): { kRank: number; vRank: number } {
  const kRank = roundRank(rankForThreshold(keyMass, threshold), headDim);
  const vRank = Math.max(...valueMass.map((m) => roundRank(rankForThreshold(m, threshold), headDim)));
  return { kRank, vRank };
}

export function calibrateCache(group: CacheGroup, budget: number, headDim: number): CacheCalibration {
  const { key, values } = group.bases();
  const keyMass = singularMass(key);
  const valueMass = values.map(singularMass);
  const measured = new Map<string, Map<number, number>>();
  const errorsAt = (kRank: number, vRank: number): Map<number, number> => {
    const id = `${kRank}/${vRank}`;
    let errs = measured.get(id);
    if (!errs) {
      if (kRank === headDim && vRank === headDim) {
        errs = new Map(group.readers.map((j) => [j, 0])); // nothing projected: y itself
      } else {
        const pk = kRank < headDim ? projector(leadingVectors(key, kRank), headDim, kRank) : undefined;
        const pv = vRank < headDim ? values.map((b) => projector(leadingVectors(b, vRank), headDim, vRank)) : undefined;
        errs = group.errors(group.projected(pk, pv));
      }
      measured.set(id, errs);
    }
    return errs;
  };
  const worst = (errs: Map<number, number>): number => Math.max(...errs.values());

  let chosen = { threshold: 1, kRank: headDim, vRank: headDim, errs: errorsAt(headDim, headDim) };
  const steps: SearchStep[] = [];
  const n = Math.round(1 / THRESHOLD_STEP);
  for (let k = 0; k < n; k++) {
    const threshold = (n - k) / n; // exact multiples of the step, no drift
    const { kRank, vRank } = ranksAt(keyMass, valueMass, threshold, headDim);
    const errs = errorsAt(kRank, vRank);
    const last = steps[steps.length - 1];
    if (!last || last.kRank !== kRank || last.vRank !== vRank) steps.push({ threshold, kRank, vRank, error: worst(errs) });
    if (worst(errs) > budget) break;
    chosen = { threshold, kRank, vRank, errs };
  }
  return {
    owner: group.owner,
    readers: group.readers,
    keyBasis: key,
    valueBases: values,
    kRank: chosen.kRank,
    vRank: chosen.vRank,
    threshold: chosen.threshold,
    error: worst(chosen.errs),
    readerErrors: chosen.errs,
    steps,
  };
}
