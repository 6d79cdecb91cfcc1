/**
 * Calibrating every cache of a plan, one at a time (CacheGroup): bases from the owner's keys
 * and values, ranks from the threshold search (search.ts), each candidate measured as it will
 * be written — folded, rounded to the stored dtype, computed as the runtime computes it.
 */
import type { SafetensorsDtype } from '../hf/safetensors.js';
import { singularMass } from './basis.js';
import { CacheGroup, type CalibrationData } from './cache-group.js';
import { attnName, foldCache, type CacheFold, type FoldedTensor } from './folded-checkpoint.js';
import type { NativeOps } from './ops.js';
import { searchRanks, type RankChoice } from './search.js';

export type CacheResult = CacheFold & RankChoice;

export interface CachesResult {
  readonly caches: readonly CacheResult[];
  /** The written model's changed tensors, by HF name. */
  readonly folded: ReadonlyMap<string, FoldedTensor>;
  /** Each layer's error as written. */
  readonly layerErrors: ReadonlyMap<number, number>;
}

/** Input weights by HF name: f32 values and stored dtype. */
export type InputWeights = ReadonlyMap<string, { readonly values: Float32Array; readonly dtype: SafetensorsDtype }>;

export function calibrateCaches(ops: NativeOps, data: CalibrationData, weights: InputWeights, budget: number, log: (line: string) => void): CachesResult {
  const { config: cfg, plan } = data;
  const caches: CacheResult[] = [];
  const folded = new Map<string, FoldedTensor>();
  const layerErrors = new Map<number, number>();
  for (const owner of plan.layers.map((_, i) => i).filter((i) => plan.layers[i].kvSource === i)) {
    const group = new CacheGroup(ops, data, owner);
    const { key, values } = group.bases();
    const fold = (kRank: number, vRank: number) =>
      foldCache(cfg, { owner, readers: group.readers, keyBasis: key, valueBases: values, kRank, vRank }, (name) => weights.get(name));
    const choice = searchRanks(singularMass(key), values.map(singularMass), cfg.headDim, budget, group.readers, (kRank, vRank) =>
      group.errors(group.folded(foldedWeights(owner, kRank, vRank, fold(kRank, vRank), weights, cfg.headDim))),
    );
    for (const [k, v] of fold(choice.kRank, choice.vRank)) folded.set(k, v);
    for (const [j, e] of choice.errors) layerErrors.set(j, e);
    caches.push({ owner, readers: group.readers, keyBasis: key, valueBases: values, ...choice });
    log(
      `calibrate: layer ${owner}${group.readers.length > 1 ? ` (+ readers ${group.readers.slice(1).join(', ')})` : ''}: ` +
        `k rank ${choice.kRank}, v rank ${choice.vRank} of ${cfg.headDim} (threshold ${choice.threshold.toFixed(2)}), error ${Math.max(...choice.errors.values()).toFixed(4)}`,
    );
  }
  return { caches, folded, layerErrors };
}

/** The stored tensors of one cache at (kRank, vRank) as CacheGroup.folded takes them (unchanged ones from the input). */
function foldedWeights(owner: number, kRank: number, vRank: number, folded: ReadonlyMap<string, FoldedTensor>, input: InputWeights, headDim: number) {
  const get = (name: string) => folded.get(name)?.values ?? input.get(name)?.values;
  return {
    kProj: get(attnName(owner, 'k_proj.weight'))!,
    kBias: get(attnName(owner, 'k_proj.bias')),
    kUp: kRank < headDim ? folded.get(attnName(owner, 'k_up.weight'))!.values : undefined,
    kRank,
    vProj: get(attnName(owner, 'v_proj.weight'))!,
    vBias: get(attnName(owner, 'v_proj.bias')),
    vRank,
    oProj: (j: number) => get(attnName(j, 'o_proj.weight'))!,
  };
}
