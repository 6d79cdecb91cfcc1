import { describe, expect, it } from 'vitest';
import { kvLayout } from '../../lib/kv/layout.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { PlanError, type LayerPlan } from '../../lib/plan/types.js';
import { parsePlan } from '../../lib/plan/notation.js';
import { eigenMix, maPairs22, testPlans } from './helpers.js';

const opts = { numKvHeads: 2, headDim: 64, dtypeBytes: 2 };

describe('kvLayout', () => {
  it('puts every layer of a standard plan in one global class, one page each', () => {
    const l = kvLayout(presetPlan('standard', 4), opts);
    expect(l.blockSize).toBe(16);
    const full = (layer: number, slot: number) => ({ layer, kDim: 64, vDim: 64, slot, offset: 0 });
    expect(l.classes).toEqual([
      { id: 0, retention: { kind: 'global' }, window: 0, owners: [0, 1, 2, 3], placements: [0, 1, 2, 3].map((i) => full(i, i)), pagesPerBlock: 4 },
    ]);
    expect(l.layerClass).toEqual([0, 0, 0, 0]);
    expect(l.layerSlot).toEqual([0, 1, 2, 3]);
    expect(l.pageWidth).toBe(128);
    expect(l.pageBytes).toBe(16 * 2 * (64 + 64) * 2);
  });

  it('maps the MixAttention-Pairs layout: two global owners, seven sliding owners, readers share', () => {
    const l = kvLayout(maPairs22(1024), { ...opts, blockSize: 32 });
    expect(l.classes.map((c) => [c.retention, c.owners, c.pagesPerBlock])).toEqual([
      [{ kind: 'global' }, [0, 12], 2],
      [{ kind: 'sliding', window: 1024 }, [1, 3, 7, 9, 13, 15, 19], 7],
    ]);
    // layer i reads the cache of source i; its class and slot are the source's
    const src = [0, 1, 1, 3, 3, 3, 0, 7, 7, 9, 9, 9, 12, 13, 13, 15, 15, 15, 12, 19, 19, 19];
    src.forEach((s, i) => {
      expect(l.layerClass[i]).toBe(l.layerClass[s]);
      expect(l.layerSlot[i]).toBe(l.layerSlot[s]);
      expect(l.classes[l.layerClass[i]].owners[l.layerSlot[i]]).toBe(s);
    });
    expect(l.layerSlot[18]).toBe(1);
    expect(l.layerSlot[20]).toBe(6);
  });

  it('separates classes by window; owners of any width share a class; pages fit the widest owner', () => {
    const l = kvLayout(eigenMix(), opts);
    expect(l.classes.map((c) => [c.window, c.owners, c.pagesPerBlock])).toEqual([
      [0, [0, 5], 2],
      [40, [2, 6], 2],
      [24, [4], 1],
    ]);
    expect(l.layerClass).toEqual([0, 0, 1, 1, 2, 0, 1, 1]);
    expect(l.pageWidth).toBe(128);
    expect(l.pageBytes).toBe(16 * 2 * 128 * 2);
    // widest first: the full-width owner takes page 0, the narrow one page 1
    expect(l.classes[0].placements).toEqual([
      { layer: 0, kDim: 32, vDim: 32, slot: 1, offset: 0 },
      { layer: 5, kDim: 64, vDim: 64, slot: 0, offset: 0 },
    ]);
    expect(l.layerPlacement[7]).toEqual({ layer: 6, kDim: 16, vDim: 8, slot: 1, offset: 0 });
  });

  it('packs narrow owners of a class into shared pages (first-fit decreasing)', () => {
    // widths 128, 64, 48, 40, 24, 16 (k+v) in one global class, pages of 128
    const plan = parsePlan('0 1:k32v32 2:k24v24 3:k8v32 4:k16v8 5:k8v8', { headDim: 64 });
    const l = kvLayout(plan, opts);
    expect(l.pageWidth).toBe(128);
    expect(l.classes).toHaveLength(1);
    const c = l.classes[0];
    expect(c.placements.map((p) => [p.layer, p.slot, p.offset])).toEqual([
      [0, 0, 0],
      [1, 1, 0],
      [2, 1, 64],
      [3, 2, 0],
      [4, 2, 40],
      [5, 1, 112],
    ]);
    expect(c.pagesPerBlock).toBe(3);
    // the regions of a page never overlap and stay inside it
    for (let slot = 0; slot < c.pagesPerBlock; slot++) {
      const regions = c.placements.filter((p) => p.slot === slot).map((p) => [p.offset, p.offset + p.kDim + p.vDim]).sort((a, b) => a[0] - b[0]);
      regions.forEach(([from, to], j) => {
        expect(to).toBeLessThanOrEqual(l.pageWidth);
        if (j > 0) expect(from).toBeGreaterThanOrEqual(regions[j - 1][1]);
      });
    }
    // all owners at one rank: pages are just narrower, one owner each
    const uniform = kvLayout(parsePlan('0:k16v24 1:k16v24 1:k16v24', { headDim: 64 }), opts);
    expect(uniform.pageWidth).toBe(40);
    expect(uniform.classes[0].pagesPerBlock).toBe(2);
    expect(uniform.pageBytes).toBe(16 * 2 * 40 * 2);
  });

  it('allocates nothing for readers: pages per block sum to the number of owners', () => {
    for (const plan of [...testPlans(64), presetPlan('ma-endslide', 24)]) {
      const l = kvLayout(plan, opts);
      const owners = plan.layers.filter((s, i) => s.kvSource === i).length;
      expect(l.classes.reduce((a, c) => a + c.pagesPerBlock, 0)).toBe(owners);
      const all = l.classes.flatMap((c) => c.owners).sort((a, b) => a - b);
      expect(all).toEqual(plan.layers.flatMap((s, i) => (s.kvSource === i ? [i] : [])));
      plan.layers.forEach((s, i) => {
        // equal widths: owner j of a class has page j to itself
        expect(l.classes[l.layerClass[i]].owners[l.layerSlot[i]]).toBe(s.kvSource);
        expect(l.layerPlacement[i]).toEqual(l.layerPlacement[s.kvSource]);
        expect(l.layerPlacement[i].offset).toBe(0);
      });
    }
  });

  it('keeps classes in order of their first owner', () => {
    const l = kvLayout(presetPlan('gemma3', 12, { window: 512 }), opts);
    expect(l.classes.map((c) => c.window)).toEqual([512, 0]);
    expect(l.classes[1].owners).toEqual([5, 11]);
  });

  it('rejects bad parameters by name', () => {
    const plan = presetPlan('standard', 2);
    expect(() => kvLayout(plan, { ...opts, numKvHeads: 0 })).toThrow(/numKvHeads/);
    expect(() => kvLayout(plan, { ...opts, headDim: 1.5 })).toThrow(/headDim/);
    expect(() => kvLayout(plan, { ...opts, blockSize: 0 })).toThrow(/blockSize/);
    expect(() => kvLayout(plan, { ...opts, dtypeBytes: -2 })).toThrow(/dtypeBytes/);
  });

  it('rejects plans whose readers need what their source drops', () => {
    const bad: LayerPlan = {
      name: 'bad',
      layers: [
        { attention: { kind: 'sliding', window: 8 }, kvSource: 0 },
        { attention: { kind: 'global' }, kvSource: 0 },
      ],
    };
    expect(() => kvLayout(bad, opts)).toThrow(PlanError);
    expect(() => kvLayout(bad, opts)).toThrow(/layer 1/);
  });
});
