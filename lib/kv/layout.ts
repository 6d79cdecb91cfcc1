/**
 * How a layer plan's KV caches map onto the paged pool (DESIGN.md section 3, docs/kv.md).
 *
 * Owning layers with the same retention (global, or sliding with the same window) and the
 * same K/V widths form a *cache class*: one block table per sequence, `pagesPerBlock` pages
 * per block (one per owner, in `slot` order). Reader layers allocate nothing; they read their
 * source's page through the same table.
 */
import type { AttentionKind, LayerPlan } from '../plan/types.js';
import { validatePlan } from '../plan/validate.js';

export interface KvLayoutOptions {
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Tokens per block; 16 unless given. */
  readonly blockSize?: number;
  /** Bytes per cached element: 2 for bf16, 4 for f32. */
  readonly dtypeBytes: number;
}

export interface KvClass {
  readonly id: number;
  readonly retention: AttentionKind;
  /** Window in tokens, 0 for global (the native kernels' convention). */
  readonly window: number;
  readonly kDim: number;
  readonly vDim: number;
  /** Owning layers, ascending; owner `owners[s]` uses slot s of each block. */
  readonly owners: readonly number[];
  readonly pagesPerBlock: number;
}

export interface KvLayout {
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly dtypeBytes: number;
  /**
   * Bytes of one page: the largest class's blockSize × numKvHeads × (kDim + vDim) × dtypeBytes.
   * Classes with narrower (low-rank) K/V leave the rest of their pages unused.
   */
  readonly pageBytes: number;
  readonly classes: readonly KvClass[];
  /** For every layer (readers included): the class of the cache it reads. */
  readonly layerClass: readonly number[];
  /** For every layer: the slot of its source among its class's owners. */
  readonly layerSlot: readonly number[];
}

/** Throws a RangeError naming `name` unless `value` is an integer in [min, max]. */
export function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new RangeError(`${name} must be ${range}, got ${String(value)}`);
  }
}

export function kvLayout(plan: LayerPlan, opts: KvLayoutOptions): KvLayout {
  const { numKvHeads, headDim, dtypeBytes } = opts;
  const blockSize = opts.blockSize ?? 16;
  checkInt('numKvHeads', numKvHeads, 1);
  checkInt('headDim', headDim, 1);
  checkInt('blockSize', blockSize, 1);
  checkInt('dtypeBytes', dtypeBytes, 1);
  validatePlan(plan, { headDim }); // sources precede readers, own their caches, keep what readers need

  const classes: { retention: AttentionKind; window: number; kDim: number; vDim: number; owners: number[] }[] = [];
  const classOf = new Map<string, number>();
  const layerClass: number[] = [];
  const layerSlot: number[] = [];
  plan.layers.forEach((spec, i) => {
    if (spec.kvSource !== i) {
      // A source precedes its reader (checked above), so it is already placed.
      layerClass.push(layerClass[spec.kvSource]);
      layerSlot.push(layerSlot[spec.kvSource]);
      return;
    }
    const kDim = spec.kvRank?.k ?? headDim;
    const vDim = spec.kvRank?.v ?? headDim;
    const window = spec.attention.kind === 'sliding' ? spec.attention.window : 0;
    const key = `${window}:${kDim}:${vDim}`;
    let c = classOf.get(key);
    if (c === undefined) {
      c = classes.length;
      classOf.set(key, c);
      classes.push({ retention: spec.attention, window, kDim, vDim, owners: [] });
    }
    layerClass.push(c);
    layerSlot.push(classes[c].owners.length);
    classes[c].owners.push(i);
  });

  let pageBytes = 0;
  for (const c of classes) {
    pageBytes = Math.max(pageBytes, blockSize * numKvHeads * (c.kDim + c.vDim) * dtypeBytes);
  }
  return {
    blockSize,
    numKvHeads,
    dtypeBytes,
    pageBytes,
    classes: classes.map((c, id) => ({ id, ...c, pagesPerBlock: c.owners.length })),
    layerClass,
    layerSlot,
  };
}
