/**
 * How a layer plan's KV caches map onto the paged pool (DESIGN.md section 3, docs/kv.md).
 *
 * Owning layers with the same retention (global, or sliding with the same window) form a
 * *cache class*: one block table per sequence, `pagesPerBlock` pages per block. Reader layers
 * allocate nothing; they read their source's region through the same table.
 *
 * Pages are one size for the whole pool, `pageWidth` elements per token and KV head: the
 * widest owner's kDim + vDim. An owner's region of a page (its K then its V for blockSize
 * tokens) is kDim + vDim wide, so owners kept at low rank (Eigen Attention) share pages:
 * a class packs its owners, widest first, into the first page of its block with room
 * (first-fit decreasing). Each owner gets a `slot` (the page of the block) and an `offset`
 * (where its region starts, in the same units). With equal widths every owner has a page
 * of its own, slot = rank among the owners, offset 0.
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

/** Where one owner's K/V live inside its class's blocks. */
export interface KvPlacement {
  readonly layer: number;
  /** Per KV head: cached key and value widths. */
  readonly kDim: number;
  readonly vDim: number;
  /** The page of the block (entry b·pagesPerBlock + slot of the table). */
  readonly slot: number;
  /**
   * Start of the owner's region in the page, in elements per token and KV head: the region
   * begins offset × blockSize × numKvHeads elements into the page.
   */
  readonly offset: number;
}

export interface KvClass {
  readonly id: number;
  readonly retention: AttentionKind;
  /** Window in tokens, 0 for global (the native kernels' convention). */
  readonly window: number;
  /** Owning layers, ascending. */
  readonly owners: readonly number[];
  /** owners[j]'s place, for each j. */
  readonly placements: readonly KvPlacement[];
  /** Pages per block: the pages the owners are packed into. */
  readonly pagesPerBlock: number;
}

export interface KvLayout {
  readonly blockSize: number;
  readonly numKvHeads: number;
  readonly dtypeBytes: number;
  /** Elements per token and KV head of one page: the largest owner kDim + vDim. */
  readonly pageWidth: number;
  /** Bytes of one page: blockSize × numKvHeads × pageWidth × dtypeBytes. */
  readonly pageBytes: number;
  readonly classes: readonly KvClass[];
  /** For every layer (readers included): the class of the cache it reads. */
  readonly layerClass: readonly number[];
  /** For every layer: the placement of its source (its slot, offset and widths). */
  readonly layerPlacement: readonly KvPlacement[];
  /** For every layer: layerPlacement[i].slot. */
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

  const width = (i: number): { kDim: number; vDim: number } => ({
    kDim: plan.layers[i].kvRank?.k ?? headDim,
    vDim: plan.layers[i].kvRank?.v ?? headDim,
  });
  const classes: { retention: AttentionKind; window: number; owners: number[] }[] = [];
  const classOf = new Map<number, number>();
  const layerClass: number[] = [];
  let pageWidth = 0;
  plan.layers.forEach((spec, i) => {
    if (spec.kvSource !== i) {
      // A source precedes its reader (checked above), so it is already placed.
      layerClass.push(layerClass[spec.kvSource]);
      return;
    }
    const { kDim, vDim } = width(i);
    pageWidth = Math.max(pageWidth, kDim + vDim);
    const window = spec.attention.kind === 'sliding' ? spec.attention.window : 0;
    let c = classOf.get(window);
    if (c === undefined) {
      c = classes.length;
      classOf.set(window, c);
      classes.push({ retention: spec.attention, window, owners: [] });
    }
    layerClass.push(c);
    classes[c].owners.push(i);
  });

  const placed = new Map<number, KvPlacement>();
  const out = classes.map((c, id): KvClass => {
    // First-fit decreasing; ties in layer order, so equal widths keep the owners' order.
    const order = [...c.owners].sort((a, b) => {
      const wa = width(a);
      const wb = width(b);
      return wb.kDim + wb.vDim - (wa.kDim + wa.vDim) || a - b;
    });
    const used: number[] = [];
    for (const layer of order) {
      const w = width(layer);
      let slot = used.findIndex((u) => u + w.kDim + w.vDim <= pageWidth);
      if (slot < 0) slot = used.push(0) - 1;
      placed.set(layer, { layer, ...w, slot, offset: used[slot] });
      used[slot] += w.kDim + w.vDim;
    }
    return { id, ...c, placements: c.owners.map((o) => placed.get(o)!), pagesPerBlock: used.length };
  });
  const layerPlacement = plan.layers.map((spec) => placed.get(spec.kvSource)!);
  return {
    blockSize,
    numKvHeads,
    dtypeBytes,
    pageWidth,
    pageBytes: blockSize * numKvHeads * pageWidth * dtypeBytes,
    classes: out,
    layerClass,
    layerPlacement,
    layerSlot: layerPlacement.map((p) => p.slot),
  };
}
