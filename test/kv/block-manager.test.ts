import { describe, expect, it } from 'vitest';
import { KvBlockManager, KvCacheFullError } from '../../lib/kv/block-manager.js';
import { kvLayout } from '../../lib/kv/layout.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { parsePlan } from '../../lib/plan/notation.js';

const opts = { numKvHeads: 1, headDim: 8, dtypeBytes: 2 };

describe('KvBlockManager', () => {
  it('fills a class table with one page per owner per block, in slot order', () => {
    const layout = kvLayout(presetPlan('standard', 2), { ...opts, blockSize: 4 });
    const kv = new KvBlockManager(layout, 10);
    const s = kv.addSequence();
    expect(kv.pagesNeeded(s, 5)).toBe(4);
    kv.reserve(s, 5);
    expect(kv.length(s)).toBe(0);
    expect(kv.reservedLength(s)).toBe(5);
    kv.commit(s, 5);
    expect(kv.length(s)).toBe(5);
    expect(kv.tableLength(s, 0)).toBe(4);
    expect([...kv.table(s, 0).subarray(0, 4)]).toEqual([0, 1, 2, 3]); // LIFO pool hands out 0 first
    expect(kv.freePages).toBe(6);
    expect(kv.usedPages).toBe(4);
    expect(kv.blocksInUse(0)).toBe(2);
    // the last block has room for 3 more tokens; a 4th needs a block per owner
    expect(kv.pagesNeeded(s, 3)).toBe(0);
    expect(kv.pagesNeeded(s, 4)).toBe(2);
    kv.release(s);
    expect(kv.freePages).toBe(10);
    expect(kv.liveSequences).toBe(0);
  });

  it('returns sliding blocks as soon as no future position can reach them', () => {
    // one sliding owner, window 5, blocks of 2 tokens
    const layout = kvLayout(parsePlan('0s5'), { ...opts, blockSize: 2 });
    const kv = new KvBlockManager(layout, 100);
    const s = kv.addSequence();
    for (let p = 0; p < 12; p++) {
      kv.reserve(s, 1);
      // position p attends [p-4, p]: blocks floor((p-4)/2) .. floor(p/2)
      const first = Math.max(0, Math.floor((p - 4) / 2));
      expect(kv.firstHeldBlock(s, 0)).toBe(first);
      expect(kv.blocksHeld(s, 0)).toBe(Math.floor(p / 2) - first + 1);
      const row = kv.table(s, 0);
      for (let b = 0; b < first; b++) expect(row[b]).toBe(-1);
      for (let b = first; b <= p / 2; b++) expect(row[b]).toBeGreaterThanOrEqual(0);
      kv.commit(s, 1);
    }
    expect(kv.usedPages).toBe(kv.blocksHeld(s, 0));
  });

  it('lets a reservation that returns pages succeed even when the pool is empty', () => {
    const layout = kvLayout(parsePlan('0s4'), { ...opts, blockSize: 4 });
    const kv = new KvBlockManager(layout, 2);
    const s = kv.addSequence();
    kv.reserve(s, 8);
    kv.commit(s, 8);
    expect(kv.freePages).toBe(0);
    // positions >= 8 reach back to 5: block 0 goes back, block 2 takes its page (LIFO)
    expect(kv.pagesNeeded(s, 1)).toBe(0);
    kv.reserve(s, 1);
    expect([...kv.table(s, 0).subarray(0, kv.tableLength(s, 0))]).toEqual([-1, 1, 0]);
  });

  it('reserves a batch all or nothing, returning pages first', () => {
    const layout = kvLayout(parsePlan('0s4'), { ...opts, blockSize: 4 });
    const kv = new KvBlockManager(layout, 4);
    const a = kv.addSequence();
    const b = kv.addSequence();
    kv.reserve(a, 12); // blocks 0-2, of which it has used 0-1 so far
    kv.commit(a, 8);
    kv.reserve(b, 4);
    kv.commit(b, 4);
    expect(kv.freePages).toBe(0);
    // b needs a page that a returns; in the order [b, a] only the batch call manages it
    expect(kv.pagesNeeded(b, 1)).toBe(1);
    expect(kv.pagesNeeded(a, 1)).toBe(-1);
    expect(kv.tryReserve(b, 1)).toBe(false);
    expect(kv.tryReserveBatch([b, a], [1, 1])).toBe(true);
    expect(kv.freePages).toBe(0);
    expect(kv.tryReserveBatch([b, a], [5, 1])).toBe(false);
    expect(() => kv.reserveBatch([b, a], [5, 1])).toThrow(KvCacheFullError);
    expect(() => kv.tryReserveBatch([a, a], [1, 1])).toThrow(/repeats sequence/);
    expect(() => kv.tryReserveBatch([a], [1, 1])).toThrow(/ks has 2/);
  });

  it('throws KvCacheFullError naming the sequence, pages needed and free, per class', () => {
    const layout = kvLayout(parsePlan('w=8 0 1s 1s 0'), { ...opts, blockSize: 4 });
    const kv = new KvBlockManager(layout, 5);
    const s = kv.addSequence();
    kv.reserve(s, 8); // 2 blocks × (1 global + 1 sliding page)
    kv.commit(s, 8);
    const t = kv.addSequence();
    let err: unknown;
    try {
      kv.reserve(t, 9);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvCacheFullError);
    const e = err as KvCacheFullError;
    expect(e.seq).toBe(t);
    expect(e.pagesNeeded).toBe(6);
    expect(e.freePages).toBe(1);
    expect(e.message).toMatch(/sequence 1 needs 6 more pages to reserve 9 tokens at position 0/);
    expect(e.message).toMatch(/1 of 5 are free/);
    expect(e.message).toMatch(/class 0 \(global, 1 pages\/block\): takes 3 pages/);
    expect(e.message).toMatch(/class 1 \(sliding 8, 1 pages\/block\): takes 3 pages/);
    expect(kv.usedPages).toBe(4);
    expect(kv.blocksHeld(t, 0)).toBe(0);
  });

  it('names the bad argument', () => {
    const layout = kvLayout(presetPlan('standard', 2), opts);
    expect(() => new KvBlockManager(layout, -1)).toThrow(/numPages/);
    expect(() => new KvBlockManager(layout, 2.5)).toThrow(/numPages/);
    const kv = new KvBlockManager(layout, 8);
    const s = kv.addSequence();
    for (const call of [
      () => kv.reserve(7, 1),
      () => kv.tryReserve(7, 1),
      () => kv.pagesNeeded(7, 1),
      () => kv.commit(7, 1),
      () => kv.length(7),
      () => kv.release(7),
      () => kv.table(7, 0),
    ]) {
      expect(call).toThrow(/seq 7 is not a live sequence/);
    }
    expect(() => kv.reserve(s, -1)).toThrow(/\bk must be/);
    expect(() => kv.reserve(s, 0.5)).toThrow(/\bk must be/);
    expect(() => kv.commit(s, 1)).toThrow(/only 0 tokens are reserved/);
    expect(() => kv.table(s, 1)).toThrow(/classId/);
    expect(() => kv.blocksInUse(-1)).toThrow(/classId/);
    kv.release(s);
    expect(() => kv.length(s)).toThrow(/already released/);
  });
});
