/**
 * Prefix caching through the engine: a request that starts from cached KV blocks (shared with
 * a live request, or taken back from the cache) gives the same logits as computing its whole
 * prompt without the cache, on a MixAttention plan whose window is shorter than the prefix.
 */
import { describe, expect, it } from 'vitest';
import type { Engine } from '../../lib/engine/engine.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { llamaLike, relDiff } from '../reference/helpers.js';
import { makeEngine } from './harness.js';

const cfg = llamaLike(6);
const plan = presetPlan('ma', cfg.numLayers, { window: 6 });
const BLOCK = 4;
const tokens = (n: number, tag: number): number[] => Array.from({ length: n }, (_, i) => (i * 7 + tag * 13 + ((i * i) % 5)) % cfg.vocabSize);

/**
 * Runs a prompt in chunks of `chunk` (after its cached prefix, when `cache`), keeping the
 * sequence live. Returns it, the cached tokens and the logits of every computed position.
 */
async function run(engine: Engine, prompt: number[], cache: boolean, chunk = 8) {
  const { seq, cachedTokens } = cache ? engine.addSequenceWithPrompt(prompt) : { seq: engine.addSequence(), cachedTokens: 0 };
  const V = cfg.vocabSize;
  const logits: Float64Array[] = [];
  for (let p = cachedTokens; p < prompt.length; p += chunk) {
    const step = prompt.slice(p, p + chunk);
    const [out] = await engine.step([{ seq, tokens: step, logits: 'all' }]);
    for (let r = 0; r < step.length; r++) logits.push(Float64Array.from(out.subarray(r * V, (r + 1) * V)));
  }
  return { seq, cached: cachedTokens, logits };
}

describe('engine with prefix caching', () => {
  it('gives the logits of an uncached run after a hit (ma plan, window 6, blocks of 4)', async () => {
    using cached = makeEngine(cfg, plan, { blockSize: BLOCK, kvPages: 256 });
    using plain = makeEngine(cfg, plan, { blockSize: BLOCK, kvPages: 256, prefixCache: false });
    expect([cached.blocks.prefixCaching, plain.blocks.prefixCaching]).toEqual([true, false]);
    const prefix = tokens(22, 1);
    const first = await run(cached, [...prefix, ...tokens(5, 2)], true);
    expect(first.cached).toBe(0);

    // Shares blocks 0-4 of the global class with the live first request, and the sliding
    // blocks that position 20 attends ([15, 20]: blocks 3, 4), one of them from the cache.
    const prompts = [
      [...prefix, ...tokens(7, 3)], // P = 20
      prefix.slice(0, 20), // P = 16: the last token is always computed
      [...prefix, ...tokens(30, 4)], // P = 20, then well past the window
    ];
    const worst: number[] = [];
    for (const [i, prompt] of prompts.entries()) {
      const hit = await run(cached, prompt, true, 1 + i * 3);
      expect(hit.cached).toBe([20, 16, 20][i]);
      const ref = await run(plain, prompt, false);
      worst.push(relDiff(hit.logits, ref.logits.slice(hit.cached)));
      plain.releaseSequence(ref.seq);
      if (i === 0) cached.releaseSequence(first.seq); // later hits come from the cache alone
      cached.releaseSequence(hit.seq);
    }
    for (const w of worst) expect(w).toBeLessThan(1e-5);
    expect([cached.blocks.usedPages, plain.blocks.usedPages]).toEqual([0, 0]);
    expect(cached.blocks.cachedPages).toBeGreaterThan(0);
    const stats = cached.blocks.prefixCacheStats();
    expect([stats.queries, stats.hitTokens]).toEqual([4, 56]);
  });

  it('keeps generated tokens cacheable: a follow-up turn hits past the first prompt', async () => {
    using engine = makeEngine(cfg, plan, { blockSize: BLOCK, kvPages: 256 });
    const turn1 = tokens(10, 5);
    const a = await run(engine, turn1, true);
    const reply = tokens(9, 6);
    for (const t of reply) await engine.step([{ seq: a.seq, tokens: [t] }]); // decode, one token a step
    engine.releaseSequence(a.seq);
    const turn2 = [...turn1, ...reply, ...tokens(4, 7)];
    const b = await run(engine, turn2, true);
    expect(b.cached).toBe(16); // blocks 0-3 of turn1 + reply (19 tokens)
    using plain = makeEngine(cfg, plan, { blockSize: BLOCK, kvPages: 256, prefixCache: false });
    const ref = await run(plain, turn2, false);
    expect(relDiff(b.logits, ref.logits.slice(16))).toBeLessThan(1e-5);
  });
});
