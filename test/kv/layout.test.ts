import { describe, expect, it } from 'vitest';
import { kvLayout } from '../../lib/kv/layout.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { PlanError, type LayerPlan } from '../../lib/plan/types.js';
import { eigenMix, maPairs22, testPlans } from './helpers.js';

const opts = { numKvHeads: 2, headDim: 64, dtypeBytes: 2 };

describe('kvLayout', () => {
  it('puts every layer of a standard plan in one global class, one slot each', () => {
    const l = kvLayout(presetPlan('standard', 4), opts);
    expect(l.blockSize).toBe(16);
    expect(l.classes).toEqual([
      { id: 0, retention: { kind: 'global' }, window: 0, kDim: 64, vDim: 64, owners: [0, 1, 2, 3], pagesPerBlock: 4 },
    ]);
    expect(l.layerClass).toEqual([0, 0, 0, 0]);
    expect(l.layerSlot).toEqual([0, 1, 2, 3]);
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

  it('separates classes by window and by width; pages are sized for the widest', () => {
    const l = kvLayout(eigenMix(), opts);
    expect(l.classes.map((c) => [c.window, c.kDim, c.vDim, c.owners])).toEqual([
      [0, 32, 32, [0]],
      [40, 64, 64, [2]],
      [24, 64, 64, [4]],
      [0, 64, 64, [5]],
      [40, 16, 8, [6]],
    ]);
    expect(l.layerClass).toEqual([0, 0, 1, 1, 2, 3, 4, 4]);
    expect(l.pageBytes).toBe(16 * 2 * 128 * 2);
  });

  it('allocates nothing for readers: pages per block sum to the number of owners', () => {
    for (const plan of [...testPlans(64), presetPlan('ma-endslide', 24)]) {
      const l = kvLayout(plan, opts);
      const owners = plan.layers.filter((s, i) => s.kvSource === i).length;
      expect(l.classes.reduce((a, c) => a + c.pagesPerBlock, 0)).toBe(owners);
      const all = l.classes.flatMap((c) => c.owners).sort((a, b) => a - b);
      expect(all).toEqual(plan.layers.flatMap((s, i) => (s.kvSource === i ? [i] : [])));
      plan.layers.forEach((s, i) => {
        expect(l.classes[l.layerClass[i]].owners[l.layerSlot[i]]).toBe(s.kvSource);
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
