/** Prefix caching in the block manager: chain keys, hit rules, sharing, LRU eviction. */
import { describe, expect, it } from 'vitest';
import { blockKey, mapKey, rootKey, type ChainKey } from '../../lib/kv/chain-hash.js';
import { KvCacheFullError } from '../../lib/kv/block-manager.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { manager, poolSnapshot, serve, toks } from './prefix-helpers.js';

const key = (parent: ChainKey, tokens: number[]): ChainKey => {
  const out = { hi: 0, lo: 0 };
  blockKey(parent.hi, parent.lo, tokens, 0, tokens.length, out);
  return out;
};

describe('chain keys', () => {
  const root = { hi: 0, lo: 0 };
  rootKey(1, 0, root);

  it('depend on the parent, the salt, every token and its place', () => {
    const a = key(root, [1, 2, 3, 4]);
    expect(key(root, [1, 2, 3, 4])).toEqual(a);
    expect(key(root, [2, 1, 3, 4])).not.toEqual(a);
    expect(key(root, [1, 2, 3, 5])).not.toEqual(a);
    expect(key(root, [1, 2, 3])).not.toEqual(key(root, [1, 2, 3, 0]));
    expect(key(a, [1, 2, 3, 4])).not.toEqual(a); // block 1 with block 0's tokens
    const salted = { hi: 0, lo: 0 };
    rootKey(1, 7, salted);
    expect(key(salted, [1, 2, 3, 4])).not.toEqual(a);
    rootKey(2, 0, salted);
    expect(key(salted, [1, 2, 3, 4])).not.toEqual(a);
  });

  it('do not collide over all 65536 blocks of 16 binary tokens, nor in their map form', () => {
    const full = new Set<string>();
    const map = new Set<number>();
    const block = new Array<number>(16);
    const out = { hi: 0, lo: 0 };
    for (let x = 0; x < 65536; x++) {
      for (let i = 0; i < 16; i++) block[i] = (x >> i) & 1;
      blockKey(root.hi, root.lo, block, 0, 16, out);
      full.add(`${out.hi},${out.lo}`);
      const m = mapKey(out.hi, out.lo);
      expect(Number.isSafeInteger(m)).toBe(true);
      map.add(m);
    }
    expect(full.size).toBe(65536);
    expect(map.size).toBe(65536);
  });
});

describe('prefix hits', () => {
  it('global classes: every full block of the shared prefix, capped below the prompt length', () => {
    const kv = manager(presetPlan('standard', 2), 200);
    const T = toks(22);
    const a = serve(kv, T);
    expect(a.cached).toBe(0);
    kv.release(a.seq);
    // blocks 0-4 are full and keyed; block 5 (tokens 20, 21) is not, and went back free
    expect(kv.cachedPages).toBe(10);
    expect(kv.usedPages).toBe(0);
    expect(serve(kv, T).cached).toBe(20);
    expect(serve(kv, [...T, 5, 6]).cached).toBe(20);
    expect(serve(kv, T.slice(0, 20)).cached).toBe(16); // the last token must be computed
    expect(serve(kv, T.slice(0, 21)).cached).toBe(20);
    expect(serve(kv, [...T.slice(0, 10), 999, 998]).cached).toBe(8); // diverges inside block 2
    expect(serve(kv, T.slice(0, 4)).cached).toBe(0);
    expect(serve(kv, []).cached).toBe(0);
    expect(serve(kv, [T[0] + 1, ...T.slice(1)]).cached).toBe(0); // every key depends on token 0
  });

  it('a sliding class needs only the blocks its window reaches from P', () => {
    const kv = manager('0s5', 100);
    const T = toks(30);
    const a = serve(kv, T, { chunk: 1 }); // token by token: blocks 0-5 leave the window
    expect(kv.firstHeldBlock(a.seq, 0)).toBe(6);
    expect(kv.cachedPages).toBe(6);
    // P = 28 attends [24, 28]: block 6, held by a
    const b = serve(kv, T);
    expect(b.cached).toBe(28);
    expect(kv.firstHeldBlock(b.seq, 0)).toBe(6);
    expect(kv.blockRefCount(b.seq, 0, 6)).toBe(2);
    expect(kv.blockRefCount(a.seq, 0, 6)).toBe(2);
    expect(kv.blockRefCount(b.seq, 0, 7)).toBe(1); // its own block for tokens 28, 29
    // P = 12 attends [8, 12]: block 2, taken back from the cache
    const c = serve(kv, T.slice(0, 14));
    expect(c.cached).toBe(12);
    expect([kv.firstHeldBlock(c.seq, 0), kv.blocksHeld(c.seq, 0)]).toEqual([2, 2]);
    expect(kv.cachedPages).toBe(5);
  });

  it('a longer prefix can hit where a shorter one misses (earlier window blocks evicted)', () => {
    const kv = manager('0s5', 8);
    const T = toks(30);
    serve(kv, T, { chunk: 1 }); // holds blocks 6, 7; blocks 0-5 cached, oldest first
    expect([kv.freePages, kv.cachedPages]).toEqual([0, 6]);
    serve(kv, toks(12, 9)); // 3 blocks: evicts blocks 0, 1, 2
    expect(kv.prefixCacheStats().classes[0].evictedBlocks).toBe(3);
    expect(kv.matchPrefix(T)).toBe(28); // block 6
    expect(kv.matchPrefix(T.slice(0, 22))).toBe(20); // block 4
    expect(kv.matchPrefix(T.slice(0, 17))).toBe(16); // block 3
    expect(kv.matchPrefix(T.slice(0, 14))).toBe(0); // blocks 2, 1, 0 are gone
  });

  it('a window longer than the prefix needs every block, like a global class', () => {
    for (const [window, first] of [[64, 0], [6, 3]]) {
      const kv = manager(`w=${window} 0 1s`, 100);
      const T = toks(22);
      kv.release(serve(kv, T).seq);
      const b = serve(kv, T);
      expect(b.cached).toBe(20);
      expect(kv.firstHeldBlock(b.seq, 0)).toBe(0);
      // P = 20 attends [20 - window + 1, 20]
      expect(kv.firstHeldBlock(b.seq, 1)).toBe(first);
      expect(kv.blocksHeld(b.seq, 1)).toBe(6 - first);
    }
  });

  it('evicts the deepest blocks first, so a hit shortens block by block', () => {
    const kv = manager('w=5 0 1s', 12);
    const T = toks(22);
    kv.release(serve(kv, T).seq); // 5 keyed blocks per class cached, block 5 freed
    expect([kv.freePages, kv.cachedPages]).toEqual([2, 10]);
    const x = kv.addSequence();
    const grow = () => {
      kv.reserve(x, 4);
      kv.commit(x, 4);
    };
    grow(); // the 2 free pages
    expect(kv.matchPrefix(T)).toBe(20);
    grow(); // evicts block 4 of both classes
    expect(kv.matchPrefix(T)).toBe(16); // the global class ends at block 3; P = 16 needs sliding block 3
    grow(); // evicts global block 3; x's sliding class reuses its own block 0, out of its window
    expect(kv.matchPrefix(T)).toBe(12);
    expect(kv.prefixCacheStats().classes.map((c) => c.evictedBlocks)).toEqual([2, 1]);
  });
});

describe('sharing and the cache', () => {
  it('counts references per block and caches a block when its last user lets it go', () => {
    const kv = manager(presetPlan('standard', 2), 100);
    const T = toks(22);
    const a = serve(kv, T);
    const b = serve(kv, T); // a is still live: its full blocks are shared at once
    const c = serve(kv, T);
    expect([b.cached, c.cached]).toEqual([20, 20]);
    for (let blk = 0; blk < 5; blk++) expect(kv.blockRefCount(c.seq, 0, blk)).toBe(3);
    expect(kv.blockRefCount(c.seq, 0, 5)).toBe(1);
    expect([...kv.table(b.seq, 0).subarray(0, 10)]).toEqual([...kv.table(a.seq, 0).subarray(0, 10)]);
    expect(kv.blocksInUse(0)).toBe(5 + 3); // shared blocks once, plus each one's last block
    expect(kv.usedPages).toBe(16);
    kv.release(a.seq);
    kv.release(b.seq);
    expect(kv.blockRefCount(c.seq, 0, 0)).toBe(1);
    expect([kv.usedPages, kv.cachedPages]).toEqual([12, 0]);
    kv.release(c.seq);
    expect([kv.usedPages, kv.cachedPages, kv.freePages]).toEqual([0, 10, 90]);
    expect(kv.blocksInUse(0)).toBe(0);
    expect(kv.prefixCacheStats().classes[0].cachedBlocks).toBe(5);
  });

  it('evicts least recently cached blocks first; a hit takes blocks off the LRU list', () => {
    const kv = manager(presetPlan('standard', 1), 6);
    const A = toks(9, 1);
    const B = toks(9, 2);
    const a = serve(kv, A);
    const b = serve(kv, B);
    const pagesA = [...kv.table(a.seq, 0).subarray(0, 2)];
    const pagesB = [...kv.table(b.seq, 0).subarray(0, 2)];
    kv.release(a.seq);
    kv.release(b.seq);
    expect(kv.pageIds().cached).toEqual([pagesA[1], pagesA[0], pagesB[1], pagesB[0]]);
    const x = kv.addSequence();
    kv.reserve(x, 12); // 2 free pages, then evicts A's block 1
    expect([kv.matchPrefix(A), kv.matchPrefix(B)]).toEqual([4, 8]);
    const b2 = serve(kv, B); // hits B's blocks (off the list); its own block 2 evicts A's block 0
    expect(b2.cached).toBe(8);
    expect([kv.matchPrefix(A), kv.cachedPages, kv.freePages]).toEqual([0, 0, 0]);
    expect(kv.tryReserve(x, 16)).toBe(false); // B's blocks are in use: nothing to evict
    kv.release(b2.seq);
    expect(kv.pageIds().cached).toEqual([pagesB[1], pagesB[0]]);
    expect(kv.prefixCacheStats().classes[0].evictedBlocks).toBe(2);
  });

  it('a failed reservation changes nothing, cache included', () => {
    const kv = manager('w=5 0 1s', 14);
    const T = toks(22);
    kv.release(serve(kv, T).seq);
    const x = kv.addSequence();
    const before = poolSnapshot(kv);
    expect(kv.pagesNeeded(x, 32)).toBe(16);
    expect(kv.tryReserve(x, 32)).toBe(false);
    expect(kv.tryReserveBatch([x], [32])).toBe(false);
    expect(() => kv.reserve(x, 32)).toThrow(/needs 16 more pages .* but 14 of 14 are free or cached \(10 cached\)/);
    try {
      kv.reserve(x, 32);
    } catch (e) {
      expect(e).toBeInstanceOf(KvCacheFullError);
      expect((e as KvCacheFullError).cachedPages).toBe(10);
    }
    expect(() => kv.reserveBatch([x], [32])).toThrow(KvCacheFullError);
    expect(poolSnapshot(kv)).toEqual(before);
    expect(kv.matchPrefix(T)).toBe(20);
    expect(kv.tryReserve(x, 28)).toBe(true); // 14 pages: everything, evicting all
    expect(kv.matchPrefix(T)).toBe(0);
  });

  it('a batch counts a block shared by two of its sequences as available once both let it go', () => {
    const kv = manager('0s4', 5);
    const T = toks(13);
    kv.release(serve(kv, T).seq); // blocks 0-2 cached, block 3 freed
    const b = serve(kv, T);
    const c = serve(kv, T);
    expect([b.cached, c.cached]).toEqual([12, 12]); // both hold block 2 (shared) and their own block 3
    for (const s of [b, c]) {
      kv.reserve(s.seq, 3);
      kv.commit(s.seq, 3, [1, 2, 3]);
    }
    expect([kv.freePages, kv.cachedPages]).toEqual([0, 2]);
    const x = kv.addSequence();
    kv.reserve(x, 1); // evicts block 1: one cached page left
    expect(kv.availablePages).toBe(1);
    // at 16 both return block 2 and take block 4; alone, neither frees block 2
    expect([kv.pagesNeeded(b.seq, 1), kv.pagesNeeded(c.seq, 1)]).toEqual([1, 1]);
    const before = poolSnapshot(kv);
    expect(kv.tryReserveBatch([b.seq, c.seq], [1, 5])).toBe(false); // needs 3 - 1
    expect(poolSnapshot(kv)).toEqual(before);
    expect(kv.blockRefCount(b.seq, 0, 2)).toBe(2); // the dry run put its references back
    expect(kv.tryReserveBatch([b.seq, c.seq], [1, 1])).toBe(true);
    expect([kv.freePages, kv.cachedPages, kv.usedPages]).toEqual([0, 0, 5]);
    expect([kv.firstHeldBlock(b.seq, 0), kv.firstHeldBlock(c.seq, 0)]).toEqual([3, 3]);
  });
});
