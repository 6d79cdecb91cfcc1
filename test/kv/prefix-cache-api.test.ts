/** Prefix caching: publication rules, switches, salts, counters and argument checks. */
import { describe, expect, it } from 'vitest';
import { presetPlan } from '../../lib/plan/presets.js';
import { manager, poolSnapshot, serve, toks } from './prefix-helpers.js';

describe('prefix cache publication', () => {
  it('keeps one copy when two sequences compute the same blocks at once', () => {
    const kv = manager(presetPlan('standard', 1), 12);
    const T = toks(10);
    const a = kv.addSequence({ promptTokens: T });
    const b = kv.addSequence({ promptTokens: T }); // nothing is cached yet
    for (const s of [a, b]) {
      kv.reserve(s, 10);
      kv.commit(s, 10); // tokens from the prompt
    }
    kv.release(a);
    expect(kv.cachedPages).toBe(2);
    kv.release(b); // b's copies of blocks 0, 1 stayed private: the map has a's
    expect([kv.cachedPages, kv.freePages]).toEqual([2, 10]);
    expect(serve(kv, T).cached).toBe(8);
  });

  it("offers a private copy to the cache when the published one is gone", () => {
    const kv = manager(presetPlan('standard', 1), 6);
    const T = toks(10);
    const a = kv.addSequence({ promptTokens: T });
    const b = kv.addSequence({ promptTokens: T });
    for (const s of [a, b]) {
      kv.reserve(s, 10);
      kv.commit(s, 10);
    }
    kv.release(a); // its blocks 0, 1 cached; block 2 free
    const x = kv.addSequence();
    kv.reserve(x, 12); // evicts a's blocks
    expect([kv.cachedPages, kv.matchPrefix(T)]).toEqual([0, 0]);
    kv.release(x);
    kv.release(b);
    expect([kv.cachedPages, kv.matchPrefix(T)]).toEqual([2, 8]);
  });

  it('publishes past the prompt only the blocks whose tokens commit was given', () => {
    const kv = manager(presetPlan('standard', 1), 20);
    const T = toks(6);
    const a = kv.addSequence({ promptTokens: T });
    kv.reserve(a, 6);
    kv.commit(a, 6); // block 0 from the prompt; tokens 4, 5 start block 1
    kv.reserve(a, 6);
    kv.commit(a, 6); // unknown tokens: blocks 1, 2 can never be keyed
    kv.release(a);
    expect(kv.cachedPages).toBe(1);
    const b = kv.addSequence();
    kv.reserve(b, 9);
    kv.commit(b, 9, toks(9, 3)); // no prompt, but commit brings the tokens
    kv.release(b);
    expect(kv.cachedPages).toBe(3);
    expect(kv.matchPrefix(toks(9, 3))).toBe(8);
    expect(kv.matchPrefix([...T, 1, 2, 3, 4, 5, 6])).toBe(4);
  });

  it('shares nothing between salts', () => {
    const kv = manager(presetPlan('standard', 1), 20);
    const T = toks(13);
    kv.release(serve(kv, T, { salt: 1 }).seq);
    expect([kv.matchPrefix(T), kv.matchPrefix(T, { salt: 2 }), kv.matchPrefix(T, { salt: 1 })]).toEqual([0, 0, 12]);
    expect(serve(kv, T, { salt: 1 }).cached).toBe(12);
  });

  it('does nothing when turned off: no hits, no cached pages, pages back on the free list', () => {
    const kv = manager('w=5 0 1s', 40, 4, { prefixCache: false });
    expect(kv.prefixCaching).toBe(false);
    const T = toks(22);
    kv.release(serve(kv, T).seq);
    const b = serve(kv, T, { chunk: 3 });
    expect(b.cached).toBe(0);
    expect(kv.matchPrefix(T)).toBe(0);
    kv.release(b.seq);
    expect([kv.freePages, kv.cachedPages, kv.availablePages]).toEqual([40, 0, 40]);
    expect(kv.pageIds().cached).toEqual([]);
    const st = kv.prefixCacheStats();
    expect([st.enabled, st.queries, st.hitTokens]).toEqual([false, 0, 0]);
  });
});

describe('prefix cache queries', () => {
  it('matchPrefix changes nothing', () => {
    const kv = manager('w=5 0 1s', 40);
    const T = toks(22);
    kv.release(serve(kv, T).seq);
    const before = poolSnapshot(kv);
    expect(kv.matchPrefix(T)).toBe(20);
    expect(poolSnapshot(kv)).toEqual(before);
  });

  it('counts queries and hits in tokens and blocks, per class', () => {
    const kv = manager('w=5 0 1s', 40);
    const T = toks(22);
    kv.release(serve(kv, T).seq); // query 1: 22 tokens, 5 blocks could hit, none did
    serve(kv, T); // query 2: P = 20
    serve(kv, T.slice(0, 10)); // query 3: 2 blocks could hit, P = 8
    const st = kv.prefixCacheStats();
    expect(st).toMatchObject({ enabled: true, queries: 3, queryTokens: 54, hitTokens: 28, queryBlocks: 12, hitBlocks: 7 });
    expect(st.classes[0]).toMatchObject({ queryBlocks: 12, hitBlocks: 7 });
    // the sliding class (window 5) needs one block at P = 20 ([16, 20]) and at P = 8 ([4, 8])
    expect(st.classes[1]).toMatchObject({ queryBlocks: 3, hitBlocks: 2 });
  });

  it('names bad arguments and leaves no sequence behind', () => {
    const kv = manager(presetPlan('standard', 1), 20);
    expect(() => kv.addSequence({ promptTokens: [1, -1] })).toThrow(/promptTokens\[1\] must be a token id/);
    expect(() => kv.addSequence({ promptTokens: [1.5] })).toThrow(/promptTokens\[0\]/);
    expect(() => kv.addSequence({ promptTokens: [1], salt: -1 })).toThrow(/salt/);
    expect(() => kv.matchPrefix([1], { salt: 0.5 })).toThrow(/salt/);
    expect(kv.liveSequences).toBe(0);
    const s = kv.addSequence({ promptTokens: [1, 2] });
    kv.reserve(s, 2);
    expect(() => kv.commit(s, 2, [1])).toThrow(/tokens has 1 entries/);
    expect(kv.length(s)).toBe(0);
    expect(() => kv.blockRefCount(s, 3, 0)).toThrow(/classId/);
    expect(kv.blockRefCount(s, 0, 9)).toBe(0);
  });
});
