/**
 * The scheduler's view of the KV pool: the pages a step may take (free + evictable cached
 * prefix blocks), and starting a sequence for a request's tokens at its longest cached
 * prefix when its first step fits. Kept apart so the planner does not depend on how the
 * block manager keeps its pages.
 */
import type { KvBlockManager } from '../kv/block-manager.js';
import { pagesPerSequence } from '../kv/memory-model.js';

export type StartResult =
  /** Started: `cached` leading tokens are in the cache; the first step's n tokens are reserved. */
  | { readonly kind: 'started'; readonly seq: number; readonly cached: number; readonly n: number }
  /** Not now: the first step does not fit beside what is running. */
  | { readonly kind: 'wait' }
  /** Not even one token fits (with `shrink`): `need1` pages for one token. */
  | { readonly kind: 'never'; readonly cached: number; readonly need1: number };

export class KvPool {
  /** Pages per block summed over the classes: what one new block position costs a sequence. */
  private readonly pagesPerPosition: number;

  constructor(readonly blocks: KvBlockManager) {
    this.pagesPerPosition = blocks.layout.classes.reduce((a, c) => a + c.pagesPerBlock, 0);
  }

  /** Pages a reservation can take now: free ones and cached prefix blocks no sequence uses. */
  available(): number {
    return this.blocks.availablePages;
  }

  cachedPages(): number {
    return this.blocks.cachedPages;
  }

  pagesNeeded(seq: number, k: number): number {
    return this.blocks.pagesNeeded(seq, k);
  }

  /**
   * Reserves the step's k tokens now, while planning: exact whatever the other sequences of
   * the step do (a prefix hit admitted later may share, and so keep, a block an earlier one
   * returns), and Engine.step's own reservation of the same tokens then takes nothing.
   */
  tryReserve(seq: number, k: number): boolean {
    return this.blocks.tryReserve(seq, k);
  }

  release(seq: number): void {
    this.blocks.release(seq);
  }

  /**
   * Starts a sequence for `tokens` and reserves its first step, up to maxN tokens from its
   * cached prefix on, leaving `keep` pages available; with `shrink`, a shorter first step is
   * taken rather than none.
   *
   * When the step certainly does not fit, the cache is not touched: adding the sequence
   * would retain its hit blocks and count as a prefix-cache query every step the request
   * waits. The certain test counts only the blocks past the hit; between it and the exact
   * count (hit blocks already in use by others cost nothing) the sequence is added, measured
   * exactly and released if short.
   */
  tryStart(tokens: readonly number[], maxN: number, keep: number, shrink: boolean): StartResult {
    const avail = () => this.available() - keep;
    const hit = this.blocks.prefixCaching ? this.blocks.matchPrefix(tokens) : 0;
    if (!shrink && this.pagesPastHit(hit, Math.min(maxN, tokens.length - hit)) > avail()) return { kind: 'wait' };
    const seq = this.blocks.addSequence({ promptTokens: tokens });
    const cached = this.blocks.length(seq);
    let n = Math.min(maxN, tokens.length - cached);
    if (this.pagesNeeded(seq, n) > avail()) {
      n = shrink ? this.largestFitting(seq, n, avail()) : 0;
      if (n === 0) {
        const need1 = this.pagesNeeded(seq, 1);
        this.release(seq);
        return shrink ? { kind: 'never', cached, need1 } : { kind: 'wait' };
      }
    }
    this.blocks.reserve(seq, n); // fits (checked just above)
    return { kind: 'started', seq, cached, n };
  }

  /**
   * Pages a sequence still needs to grow to `total` tokens in chunks of `chunk`: the memory
   * model's chunked peak minus the pages it holds now (a new sequence holds none). Admission
   * counts these so that a prompt is not started when the prompts already running cannot
   * all finish their prefill: starting it would only get it (or them) preempted and
   * recomputed later.
   */
  pagesToFinish(seq: number | undefined, total: number, chunk: number): number {
    const peak = pagesPerSequence(this.blocks.layout, total, chunk);
    if (seq === undefined || seq < 0) return peak;
    let held = 0;
    this.blocks.layout.classes.forEach((c) => (held += this.blocks.blocksHeld(seq, c.id) * c.pagesPerBlock));
    return Math.max(0, peak - held);
  }

  /** Most tokens in [1, n] whose pages fit in `avail` (pagesNeeded grows with k), or 0. */
  largestFitting(seq: number, n: number, avail: number): number {
    if (this.pagesNeeded(seq, 1) > avail) return 0;
    let lo = 1;
    let hi = n;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.pagesNeeded(seq, mid) <= avail) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Pages of the blocks a new sequence at a hit of `hit` tokens takes to write n more: a lower bound of its need. */
  private pagesPastHit(hit: number, n: number): number {
    const B = this.blocks.layout.blockSize;
    // The hit is whole blocks; the ones below it are shared or retained, never taken new.
    return this.pagesPerPosition * (Math.ceil((hit + n) / B) - hit / B);
  }
}
