/** Helpers shared by the prefix-caching tests. */
import { KvBlockManager, type KvBlockManagerOptions } from '../../lib/kv/block-manager.js';
import { kvLayout } from '../../lib/kv/layout.js';
import { parsePlan } from '../../lib/plan/notation.js';
import type { LayerPlan } from '../../lib/plan/types.js';

export function manager(plan: LayerPlan | string, numPages: number, blockSize = 4, opts: KvBlockManagerOptions = {}): KvBlockManager {
  const p = typeof plan === 'string' ? parsePlan(plan) : plan;
  return new KvBlockManager(kvLayout(p, { numKvHeads: 1, headDim: 8, dtypeBytes: 2, blockSize }), numPages, { hashSeed: 1, ...opts });
}

/**
 * Adds a sequence for `tokens` and computes the tokens not cached, in steps of `chunk`
 * (reserve, then commit with the tokens, as the engine does). Returns the id and the hit.
 */
export function serve(kv: KvBlockManager, tokens: readonly number[], opts: { chunk?: number; salt?: number } = {}): { seq: number; cached: number } {
  const seq = kv.addSequence({ promptTokens: tokens, salt: opts.salt });
  const cached = kv.length(seq);
  const chunk = opts.chunk ?? tokens.length;
  for (let p = cached; p < tokens.length; p += chunk) {
    const k = Math.min(chunk, tokens.length - p);
    kv.reserve(seq, k);
    kv.commit(seq, k, tokens.slice(p, p + k));
  }
  return { seq, cached };
}

/** n tokens from a small deterministic generator; `tag` makes different streams. */
export function toks(n: number, tag = 0, vocab = 1000): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + tag * 104729 + ((i * i) % 13)) % vocab);
}

/** The pool's page ids and counters, to show that something changed nothing. */
export function poolSnapshot(kv: KvBlockManager): unknown {
  const { free, cached } = kv.pageIds();
  return { free: [...free], cached, stats: kv.prefixCacheStats(), used: kv.usedPages };
}
