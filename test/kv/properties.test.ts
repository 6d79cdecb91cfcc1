/** Property tests of the block manager over random valid plans and random operation mixes. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvBlockManager, KvCacheFullError } from '../../lib/kv/block-manager.js';
import { kvLayout, type KvLayout } from '../../lib/kv/layout.js';
import { pagesPerSequence, peakBlocks } from '../../lib/kv/memory-model.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { HEAD_DIM, planArb } from './plan-arb.js';

type Op =
  | { t: 'add'; chunk: number; chunked: boolean }
  | { t: 'reserve'; pick: number; k: number }
  | { t: 'commit'; pick: number; k: number }
  | { t: 'release'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ t: fc.constant('add' as const), chunk: fc.integer({ min: 1, max: 40 }), chunked: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('reserve' as const), pick: fc.nat(), k: fc.integer({ min: 0, max: 50 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('commit' as const), pick: fc.nat(), k: fc.integer({ min: 0, max: 50 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('release' as const), pick: fc.nat() }) },
);

/** The test's own record of a sequence. `chunked` ones grow in steps of exactly `chunk`. */
interface Seq {
  id: number;
  chunk: number;
  chunked: boolean;
  finished: boolean;
  length: number;
  reservedEnd: number;
  /** Length at the last successful reservation. */
  lastReserveAt: number;
}

/** Everything a failed reservation must leave as it was. */
function snapshot(kv: KvBlockManager, layout: KvLayout, id: number): unknown {
  return {
    free: kv.freePages,
    length: kv.length(id),
    reserved: kv.reservedLength(id),
    classes: layout.classes.map((c) => ({
      inUse: kv.blocksInUse(c.id),
      held: kv.blocksHeld(id, c.id),
      table: [...kv.table(id, c.id).subarray(0, kv.tableLength(id, c.id))],
    })),
  };
}

function checkInvariants(kv: KvBlockManager, layout: KvLayout, live: readonly Seq[]): void {
  const B = layout.blockSize;
  const owned = new Set<number>();
  const inUse = layout.classes.map(() => 0);
  for (const s of live) {
    expect(kv.length(s.id)).toBe(s.length);
    expect(kv.reservedLength(s.id)).toBe(s.reservedEnd);
    let pages = 0;
    for (const c of layout.classes) {
      const W = c.window;
      const first = kv.firstHeldBlock(s.id, c.id);
      const held = kv.blocksHeld(s.id, c.id);
      const end = first + held;
      const row = kv.table(s.id, c.id);
      expect(kv.tableLength(s.id, c.id)).toBe(end * c.pagesPerBlock);
      // Table entries: distinct valid pages for held blocks, -1 everywhere else.
      for (let b = 0; b * c.pagesPerBlock < row.length; b++) {
        for (let slot = 0; slot < c.pagesPerBlock; slot++) {
          const page = row[b * c.pagesPerBlock + slot];
          if (b >= first && b < end) {
            expect(page).toBeGreaterThanOrEqual(0);
            expect(page).toBeLessThan(kv.numPages);
            expect(owned.has(page)).toBe(false);
            owned.add(page);
          } else {
            expect(page).toBe(-1);
          }
        }
      }
      // Safety: every position that a position >= length attends, up to the reservation,
      // lies in a held block.
      const lo = W === 0 ? 0 : Math.max(0, s.length - W + 1);
      if (lo < s.reservedEnd) {
        expect(first).toBeLessThanOrEqual(Math.floor(lo / B));
        expect(end).toBeGreaterThan(Math.floor((s.reservedEnd - 1) / B));
      }
      // Economy: exactly the blocks that the last reservation's positions could reach.
      const expFirst = W === 0 ? 0 : Math.floor(Math.max(0, s.lastReserveAt - W + 1) / B);
      expect(first).toBe(expFirst);
      expect(held).toBe(Math.max(0, Math.ceil(s.reservedEnd / B) - expFirst));
      if (s.chunked) expect(held).toBeLessThanOrEqual(peakBlocks(layout, c.id, s.reservedEnd, s.chunk));
      inUse[c.id] += held;
      pages += held * c.pagesPerBlock;
    }
    if (s.chunked) expect(pages).toBeLessThanOrEqual(pagesPerSequence(layout, s.reservedEnd, s.chunk));
  }
  expect(owned.size).toBe(kv.usedPages);
  expect(kv.freePages + kv.usedPages).toBe(kv.numPages);
  for (const c of layout.classes) expect(kv.blocksInUse(c.id)).toBe(inUse[c.id]);
  expect(kv.liveSequences).toBe(live.length);
}

function reserveStep(kv: KvBlockManager, layout: KvLayout, s: Seq, k: number): boolean {
  const need = kv.pagesNeeded(s.id, k);
  const before = snapshot(kv, layout, s.id);
  const free = kv.freePages;
  const ok = kv.tryReserve(s.id, k);
  expect(ok).toBe(need <= free);
  if (!ok) {
    expect(snapshot(kv, layout, s.id)).toEqual(before);
    expect(() => kv.reserve(s.id, k)).toThrow(KvCacheFullError);
    expect(() => kv.reserve(s.id, k)).toThrow(new RegExp(`sequence ${s.id} needs ${need} more pages`));
    expect(snapshot(kv, layout, s.id)).toEqual(before);
    return false;
  }
  expect(kv.freePages).toBe(free - need);
  s.lastReserveAt = s.length;
  s.reservedEnd = Math.max(s.reservedEnd, s.length + k);
  return true;
}

function run(plan: LayerPlan, blockSize: number, numPages: number, ops: readonly Op[], prefixCache: boolean): void {
  const layout = kvLayout(plan, { numKvHeads: 2, headDim: HEAD_DIM, dtypeBytes: 2, blockSize });
  // Without tokens nothing is ever cached, so prefix caching on or off must behave the same.
  const kv = new KvBlockManager(layout, numPages, { prefixCache });
  const live: Seq[] = [];
  const released: number[] = [];
  for (const op of ops) {
    if (op.t === 'add') {
      const id = kv.addSequence();
      live.push({ id, chunk: op.chunk, chunked: op.chunked, finished: false, length: 0, reservedEnd: 0, lastReserveAt: 0 });
    } else if (live.length > 0) {
      const i = op.pick % live.length;
      const s = live[i];
      if (op.t === 'release') {
        kv.release(s.id);
        live.splice(i, 1);
        released.push(s.id);
      } else if (op.t === 'reserve' && s.chunked) {
        if (!s.finished) {
          // mostly full chunks; sometimes a shorter last step, after which it stops
          const last = op.k % 4 === 0;
          const k = last ? 1 + (op.k % s.chunk) : s.chunk;
          if (reserveStep(kv, layout, s, k)) {
            kv.commit(s.id, k);
            s.length += k;
            s.finished = last;
          }
        }
      } else if (op.t === 'reserve') {
        reserveStep(kv, layout, s, op.k);
      } else if (!s.chunked) {
        const room = s.reservedEnd - s.length;
        if (op.k > room) expect(() => kv.commit(s.id, op.k)).toThrow(/tokens are reserved/);
        const k = Math.min(op.k, room);
        kv.commit(s.id, k);
        s.length += k;
      }
    }
    checkInvariants(kv, layout, live);
  }
  for (const id of released) expect(() => kv.length(id)).toThrow(/not a live sequence/);
  for (const s of live) kv.release(s.id);
  expect(kv.freePages).toBe(numPages);
  expect(kv.liveSequences).toBe(0);
  for (const c of layout.classes) expect(kv.blocksInUse(c.id)).toBe(0);
}

describe('KvBlockManager properties', () => {
  it('keeps pages owned once, windows safe, counts within the model, and releases everything', () => {
    fc.assert(
      fc.property(
        planArb,
        fc.constantFrom(1, 2, 4, 16),
        fc.integer({ min: 0, max: 60 }),
        fc.array(opArb, { maxLength: 80 }),
        fc.boolean(),
        (plan, blockSize, numPages, ops, prefixCache) => run(plan, blockSize, numPages, ops, prefixCache),
      ),
      { numRuns: 300 },
    );
  });

  it('never fails a batch whose net need fits', () => {
    fc.assert(
      fc.property(
        planArb,
        fc.constantFrom(1, 4),
        fc.integer({ min: 0, max: 40 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 5 }), { maxLength: 30 }),
        (plan, blockSize, numPages, rounds) => {
          const layout = kvLayout(plan, { numKvHeads: 1, headDim: HEAD_DIM, dtypeBytes: 2, blockSize });
          const kv = new KvBlockManager(layout, numPages);
          const seqs = [0, 1, 2, 3, 4].map(() => kv.addSequence());
          for (const ks of rounds) {
            const ids = seqs.slice(0, ks.length);
            const net = ids.reduce((a, id, i) => a + kv.pagesNeeded(id, ks[i]), 0);
            const free = kv.freePages;
            expect(kv.tryReserveBatch(ids, ks)).toBe(net <= free);
            if (net <= free) {
              expect(kv.freePages).toBe(free - net);
              ids.forEach((id, i) => kv.commit(id, ks[i]));
            } else {
              expect(kv.freePages).toBe(free);
            }
          }
          for (const id of seqs) kv.release(id);
          expect(kv.freePages).toBe(numPages);
        },
      ),
      { numRuns: 300 },
    );
  });
});
