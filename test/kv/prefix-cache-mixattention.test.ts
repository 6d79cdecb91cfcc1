/**
 * The point of prefix caching with sliding classes: on a MixAttention plan, requests sharing
 * a long prefix hit exactly as often as under full attention, while every sliding class keeps
 * only its window. (Engines that free sliding blocks, or that disable prefix caching for
 * sliding-window models, reuse nothing here.)
 */
import { describe, expect, it } from 'vitest';
import type { KvBlockManager } from '../../lib/kv/block-manager.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { manager, toks } from './prefix-helpers.js';

const B = 16;
const W = 64;
const PREFIX = toks(1000, 1, 32000);
const CHUNK = 256;
const DECODE = 20;

/** A request: its prompt in prefill chunks, then DECODE generated tokens; stays live. */
function request(kv: KvBlockManager, i: number): number {
  const prompt = [...PREFIX, ...toks(30 + i, 100 + i, 32000)];
  const seq = kv.addSequence({ promptTokens: prompt });
  const all = [...prompt, ...toks(DECODE, 500 + i, 32000)];
  for (let p = kv.length(seq); p < all.length; ) {
    const k = p < prompt.length ? Math.min(CHUNK, prompt.length - p) : 1;
    kv.reserve(seq, k);
    kv.commit(seq, k, all.slice(p, p + k));
    p += k;
  }
  return seq;
}

function serveAll(plan: 'standard' | 'ma', live: boolean) {
  const kv = manager(presetPlan(plan, 24, { window: W }), 20000, B);
  const seqs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const seq = request(kv, i);
    if (live) seqs.push(seq);
    else kv.release(seq);
  }
  return { kv, seqs, stats: kv.prefixCacheStats() };
}

describe('prefix caching on a MixAttention plan', () => {
  for (const live of [true, false]) {
    it(`hits as often as standard attention (${live ? 'requests overlapping' : 'one after another'})`, () => {
      const std = serveAll('standard', live);
      const ma = serveAll('ma', live);
      // every full block of the shared prefix is reused by requests 2-20: 62 blocks = 992 tokens
      const shared = Math.floor(PREFIX.length / B);
      for (const { stats } of [std, ma]) {
        expect(stats.queries).toBe(20);
        expect(stats.hitTokens).toBe(19 * shared * B);
        expect(stats.hitBlocks).toBe(19 * shared);
      }
      expect(ma.stats.hitTokens / ma.stats.queryTokens).toBe(std.stats.hitTokens / std.stats.queryTokens);
      // ma: class 0 global (layer 0), class 1 sliding (8 owners): a hit shares the global
      // blocks 0-61 and only the 4 sliding blocks that position 992 attends ([929, 992])
      const [g, s] = ma.kv.layout.classes;
      expect([g.window, s.window, s.pagesPerBlock]).toEqual([0, W, 8]);
      expect(ma.stats.classes[0].hitBlocks).toBe(19 * shared);
      expect(ma.stats.classes[1].hitBlocks).toBe(19 * 4);
      if (live) {
        for (const seq of ma.seqs) {
          expect(ma.kv.blocksHeld(seq, 1)).toBeLessThanOrEqual(W / B + 1); // only its window
          expect(ma.kv.blocksHeld(seq, 0)).toBe(ma.kv.tableLength(seq, 0)); // all of it
        }
        // in use: the global prefix once, each request's own global blocks, 20 windows
        const own = ma.seqs.reduce((a, seq) => a + ma.kv.blocksHeld(seq, 0) - shared, 0);
        const windows = ma.seqs.reduce((a, seq) => a + ma.kv.blocksHeld(seq, 1), 0);
        // (requests whose window still reaches the prefix's last blocks share those too)
        expect(ma.kv.blocksInUse(0)).toBe(shared + own);
        expect(ma.kv.blocksInUse(1)).toBeLessThanOrEqual(windows);
        expect(ma.kv.usedPages).toBe(ma.kv.blocksInUse(0) + 8 * ma.kv.blocksInUse(1));
        expect(ma.kv.usedPages).toBeLessThan(std.kv.usedPages / 4);
      }
    });
  }

  it('a later wave with the same prefix hits again after everything was released', () => {
    const { kv } = serveAll('ma', false);
    const before = kv.prefixCacheStats().hitTokens;
    const seq = request(kv, 99);
    expect(kv.prefixCacheStats().hitTokens - before).toBe(992);
    kv.release(seq);
    expect(kv.usedPages).toBe(0);
    expect(kv.freePages + kv.cachedPages).toBe(20000);
  });
});
