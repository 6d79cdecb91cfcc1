import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { kvLayout } from '../../lib/kv/layout.js';
import {
  classBytesPerToken,
  kvBytesAtContext,
  kvBytesPerToken,
  maxConcurrentSequences,
  pagesInBudget,
  pagesPerSequence,
  peakBlocks,
} from '../../lib/kv/memory-model.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { brutePeak, eigenMix, testPlans } from './helpers.js';

const opts = { numKvHeads: 2, headDim: 64, dtypeBytes: 2 };

describe('memory model', () => {
  it('counts bytes per token over the owners only, at each class width', () => {
    const plans = [...testPlans(32), eigenMix()];
    for (const plan of plans) {
      const l = kvLayout(plan, opts);
      let total = 0;
      plan.layers.forEach((s, i) => {
        if (s.kvSource !== i) return;
        total += 2 * ((s.kvRank?.k ?? 64) + (s.kvRank?.v ?? 64)) * 2;
      });
      expect(kvBytesPerToken(l)).toBe(total);
      expect(l.classes.reduce((a, c) => a + classBytesPerToken(l, c.id), 0)).toBe(total);
    }
    // standard 24 layers, 8 KV heads of 128, bf16: 24 × 8 × 256 × 2 = 96 KiB per token
    const std = kvLayout(presetPlan('standard', 24), { numKvHeads: 8, headDim: 128, dtypeBytes: 2 });
    expect(kvBytesPerToken(std)).toBe(98304);
  });

  it('matches a position-by-position count of blocks at the peak', () => {
    const plans = [...testPlans(37), eigenMix()];
    fc.assert(
      fc.property(
        fc.constantFrom(...plans),
        fc.constantFrom(1, 3, 8, 16),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 1, max: 90 }),
        (plan, blockSize, n, chunk) => {
          const l = kvLayout(plan, { ...opts, blockSize });
          for (const c of l.classes) {
            expect(peakBlocks(l, c.id, n, chunk)).toBe(brutePeak(l, n, chunk, (x) => (x === c.id ? 1 : 0)));
          }
          const pages = brutePeak(l, n, chunk, (x) => l.classes[x].pagesPerBlock);
          expect(pagesPerSequence(l, n, chunk)).toBe(pages);
          expect(kvBytesAtContext(l, n, chunk)).toBe(pages * l.pageBytes);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('stays exact for long sequences, where it skips the periodic stretch', () => {
    const l = kvLayout(presetPlan('ma', 12, { window: 100 }), { ...opts, blockSize: 16 });
    for (const [n, chunk] of [[5000, 1], [4999, 7], [6001, 48], [3000, 100], [2500, 2048]]) {
      expect(pagesPerSequence(l, n, chunk)).toBe(brutePeak(l, n, chunk, (x) => l.classes[x].pagesPerBlock));
    }
  });

  it('caps sliding classes at the window and grows global ones with n', () => {
    const l = kvLayout(presetPlan('gemma3', 6, { window: 64 }), { ...opts, blockSize: 16 });
    const [sliding, global] = l.classes;
    // token by token: a sliding class needs ceil((W-1)/B)+1 blocks at most, the 5 owners each
    expect(peakBlocks(l, sliding.id, 100_000)).toBe(5);
    expect(peakBlocks(l, global.id, 100_000)).toBe(6250);
    expect(pagesPerSequence(l, 100_000)).toBe(5 * 5 + 6250);
    // a step of 256 tokens at 256j holds the chunk plus the window behind it: blocks
    // floor((256j - 63) / 16) = 16j - 4 up to 16j + 16
    expect(peakBlocks(l, sliding.id, 100_000, 256)).toBe(20);
  });

  it('takes the peak of the sum, which can be below the sum of the class peaks', () => {
    // 5 sliding owners (W=8) and 1 global owner, B=4, chunk 3: the sliding class peaks at a
    // step where the global class has not grown yet
    const l = kvLayout(presetPlan('gemma3', 6, { window: 8 }), { ...opts, blockSize: 4 });
    const sum = l.classes.reduce((a, c) => a + c.pagesPerBlock * peakBlocks(l, c.id, 30, 3), 0);
    expect(sum).toBe(28);
    expect(pagesPerSequence(l, 30, 3)).toBe(26);
    expect(brutePeak(l, 30, 3, (x) => l.classes[x].pagesPerBlock)).toBe(26);
  });

  it('divides the budget into whole pages and whole sequences', () => {
    const l = kvLayout(presetPlan('standard', 2), { ...opts, blockSize: 4 });
    const page = l.pageBytes;
    expect(pagesInBudget(l, 10 * page + page - 1)).toBe(10);
    // n = 9 needs 3 blocks per layer = 6 pages
    expect(pagesPerSequence(l, 9)).toBe(6);
    expect(maxConcurrentSequences(l, 9, 17 * page + 5)).toBe(2);
    expect(maxConcurrentSequences(l, 9, 18 * page)).toBe(3);
  });

  it('rejects bad arguments by name', () => {
    const l = kvLayout(presetPlan('standard', 2), opts);
    expect(() => peakBlocks(l, 3, 10)).toThrow(/classId/);
    expect(() => pagesPerSequence(l, -1)).toThrow(/\bn\b/);
    expect(() => pagesPerSequence(l, 10, 0)).toThrow(/chunk/);
    expect(() => pagesInBudget(l, 1.5)).toThrow(/budgetBytes/);
    expect(() => maxConcurrentSequences(l, 0, 1 << 30)).toThrow(/\bn\b/);
  });
});
