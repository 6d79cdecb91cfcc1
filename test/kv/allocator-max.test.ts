/**
 * The allocator reaches the memory model's maximum: exactly maxConcurrentSequences sequences
 * grow together to n inside the budget, and one more cannot.
 */
import { describe, expect, it } from 'vitest';
import { KvBlockManager, KvCacheFullError } from '../../lib/kv/block-manager.js';
import { kvLayout, type KvLayout } from '../../lib/kv/layout.js';
import { maxConcurrentSequences, pagesInBudget, pagesPerSequence } from '../../lib/kv/memory-model.js';
import { growInLockstep } from '../../lib/kv/report.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { withKvRank } from '../../lib/plan/ranks.js';
import { eigenMix, maPairs22 } from './helpers.js';

const W = 40;
const plans = [
  presetPlan('standard', 6),
  presetPlan('sliding', 6, { window: W }),
  presetPlan('ma', 12, { window: W }),
  presetPlan('ma-pairs', 13, { window: W }),
  presetPlan('cla2', 7),
  maPairs22(W),
  eigenMix(),
  // low-rank owners of mixed widths packed into shared pages
  withKvRank(presetPlan('standard', 8), (o) => [undefined, { k: 8, v: 24 }, { k: 16, v: 16 }, { k: 5, v: 3 }][o % 4], 'standard-low-rank'),
  withKvRank(presetPlan('ma-pairs', 13, { window: W }), (o) => (o % 3 === 0 ? { k: 32, v: 16 } : { k: 8, v: 8 }), 'ma-pairs-low-rank'),
];

/** Grows `count` sequences in lockstep to n with reserve(); throws when the pool runs out. */
function grow(kv: KvBlockManager, count: number, n: number, chunk: number): number[] {
  const seqs = Array.from({ length: count }, () => kv.addSequence());
  for (let len = 0; len < n; len += chunk) {
    const k = Math.min(chunk, n - len);
    for (const s of seqs) kv.reserve(s, k);
    for (const s of seqs) kv.commit(s, k);
  }
  for (const s of seqs) expect(kv.length(s)).toBe(n);
  return seqs;
}

function check(layout: KvLayout, n: number, chunk: number, target: number, slackPages: number): void {
  const perSeq = pagesPerSequence(layout, n, chunk);
  // a budget for `target` sequences plus some pages and bytes that do not make one more
  const budget = (target * perSeq + slackPages) * layout.pageBytes + layout.pageBytes - 1;
  const max = maxConcurrentSequences(layout, n, budget, chunk);
  expect(max).toBe(target);
  const pages = pagesInBudget(layout, budget);

  const kv = new KvBlockManager(layout, pages);
  for (const s of grow(kv, max, n, chunk)) kv.release(s);
  expect(kv.freePages).toBe(pages);

  // One more in lockstep runs out at the peak step. (Started after the others finished, it
  // could fit: finished sequences may hold less than at their peak.)
  const fresh = new KvBlockManager(layout, pages);
  expect(() => grow(fresh, max + 1, n, chunk)).toThrow(KvCacheFullError);
  expect(growInLockstep(layout, pages, n, chunk, max + 3)).toBe(max);
}

describe('the allocator reaches the memory model maximum', () => {
  for (const plan of plans) {
    for (const blockSize of [16, 5]) {
      it(`${plan.name}, block size ${blockSize}`, () => {
        const layout = kvLayout(plan, { numKvHeads: 2, headDim: 64, dtypeBytes: 2, blockSize });
        for (const n of [1, 7, 33, 39, 40, 41, 57, 150, 333]) {
          for (const chunk of [1, 3, 16, 50, 512]) {
            for (const [target, slack] of [[1, 0], [3, 1], [5, pagesPerSequence(layout, n, chunk) - 1]]) {
              check(layout, n, chunk, target, slack);
            }
          }
        }
      });
    }
  }
});
