/** Random valid layer plans for the block manager's property tests. */
import fc from 'fast-check';
import type { KvRank, LayerPlan, LayerSpec } from '../../lib/plan/types.js';

export const HEAD_DIM = 16;
const RANKS: (KvRank | undefined)[] = [undefined, { k: 8, v: 8 }, { k: 4, v: 12 }];

const layerArb = fc.record({
  own: fc.boolean(),
  global: fc.boolean(),
  window: fc.integer({ min: 1, max: 40 }),
  rank: fc.integer({ min: 0, max: 2 }),
  pick: fc.nat(),
});

/** A valid plan: readers pick an earlier owner and a retention the owner's cache keeps. */
export const planArb = fc.array(layerArb, { minLength: 1, maxLength: 8 }).map((raw): LayerPlan => {
  const layers: LayerSpec[] = [];
  const owners: number[] = [];
  raw.forEach((r, i) => {
    if (i === 0 || r.own) {
      owners.push(i);
      const rank = RANKS[r.rank];
      layers.push({
        attention: r.global ? { kind: 'global' } : { kind: 'sliding', window: r.window },
        kvSource: i,
        ...(rank ? { kvRank: rank } : {}),
      });
      return;
    }
    const src = owners[r.pick % owners.length];
    const sa = layers[src].attention;
    const attention: LayerSpec['attention'] =
      sa.kind === 'global'
        ? r.global ? { kind: 'global' } : { kind: 'sliding', window: r.window }
        : { kind: 'sliding', window: 1 + (r.window % sa.window) };
    const rank = layers[src].kvRank;
    layers.push({ attention, kvSource: src, ...(rank ? { kvRank: rank } : {}) });
  });
  return { name: 'random', layers };
});
