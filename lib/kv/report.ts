/**
 * A plan's KV cost in numbers, for `inspect`, the README and benchmarks: the memory model's
 * figures plus what the block manager really reaches when run on the same budget.
 */
import type { LayerPlan } from '../plan/types.js';
import { KvBlockManager } from './block-manager.js';
import { parseBytes } from './bytes.js';
import { checkInt, type KvLayout, kvLayout, type KvLayoutOptions, type KvPlacement } from './layout.js';
import {
  classBytesPerToken,
  classPageBytesPerToken,
  kvBytesPerToken,
  maxConcurrentSequences,
  pagesInBudget,
  pagesPerSequence,
  peakBlocks,
} from './memory-model.js';

export interface KvReportOptions extends KvLayoutOptions {
  /** Length every sequence grows to. */
  readonly context: number;
  /** Pool size in bytes, or a string such as '40GiB'. */
  readonly budgetBytes: number | string;
  /**
   * Tokens per growth step, in the model and the simulation alike. Default 2048 (chunked
   * prefill, and cheap to simulate); pass 1 for token-by-token growth.
   */
  readonly chunk?: number;
}

export interface KvClassReport {
  readonly id: number;
  readonly kind: 'global' | 'sliding';
  /** 0 for global. */
  readonly window: number;
  readonly owners: readonly number[];
  /** Each owner's widths and place in the class's pages. */
  readonly placements: readonly KvPlacement[];
  readonly pagesPerBlock: number;
  /** Every layer reading this class's caches, owners included. */
  readonly layers: readonly number[];
  /** K/V bytes one token costs in this class. */
  readonly bytesPerToken: number;
  /** Page bytes one token takes in this class (more than bytesPerToken when pages are part empty). */
  readonly pageBytesPerToken: number;
  /** Most blocks the class holds for one sequence growing to `context`. */
  readonly blocksAtContext: number;
  readonly pagesAtContext: number;
}

export interface KvReport {
  readonly name: string;
  readonly layers: number;
  readonly blockSize: number;
  readonly pageBytes: number;
  readonly context: number;
  readonly chunk: number;
  readonly budgetBytes: number;
  readonly totalPages: number;
  readonly cacheClasses: readonly KvClassReport[];
  /** Bytes one token costs while it is in every owning layer's cache. */
  readonly kvBytesPerToken: number;
  /**
   * Page bytes one token takes in every class: kvBytesPerToken plus what owners of
   * different widths leave empty in their pages (equal when every page is full).
   */
  readonly pageBytesPerToken: number;
  /** Most pages one sequence holds growing to `context` (sliding classes capped). */
  readonly pagesPerSequence: number;
  /** pagesPerSequence × pageBytes: the pool bytes one sequence takes at its peak. */
  readonly kvBytesAtContext: number;
  /** The memory model's maximum number of sequences growing to `context` together. */
  readonly maxConcurrentSequences: number;
  /** Sequences that reached `context` when the block manager was actually run. */
  readonly allocatorReached: number;
}

export function kvReport(plan: LayerPlan, opts: KvReportOptions): KvReport {
  const layout = kvLayout(plan, opts);
  const { context } = opts;
  const chunk = opts.chunk ?? 2048;
  checkInt('context', context, 1);
  checkInt('chunk', chunk, 1);
  const budgetBytes = typeof opts.budgetBytes === 'string' ? parseBytes(opts.budgetBytes) : opts.budgetBytes;
  const totalPages = pagesInBudget(layout, budgetBytes);
  const perSeq = pagesPerSequence(layout, context, chunk);
  const maxSeqs = maxConcurrentSequences(layout, context, budgetBytes, chunk);

  const cacheClasses = layout.classes.map((c): KvClassReport => {
    const blocks = peakBlocks(layout, c.id, context, chunk);
    return {
      id: c.id,
      kind: c.retention.kind,
      window: c.window,
      owners: c.owners,
      placements: c.placements,
      pagesPerBlock: c.pagesPerBlock,
      layers: layout.layerClass.flatMap((cls, i) => (cls === c.id ? [i] : [])),
      bytesPerToken: classBytesPerToken(layout, c.id),
      pageBytesPerToken: classPageBytesPerToken(layout, c.id),
      blocksAtContext: blocks,
      pagesAtContext: blocks * c.pagesPerBlock,
    };
  });
  return {
    name: plan.name,
    layers: plan.layers.length,
    blockSize: layout.blockSize,
    pageBytes: layout.pageBytes,
    context,
    chunk,
    budgetBytes,
    totalPages,
    cacheClasses,
    kvBytesPerToken: kvBytesPerToken(layout),
    pageBytesPerToken: cacheClasses.reduce((a, c) => a + c.pageBytesPerToken, 0),
    pagesPerSequence: perSeq,
    kvBytesAtContext: perSeq * layout.pageBytes,
    maxConcurrentSequences: maxSeqs,
    allocatorReached: growInLockstep(layout, totalPages, context, chunk, maxSeqs + 1),
  };
}

/**
 * Runs the block manager: `count` sequences grow together to `context` in `chunk` steps; a
 * sequence whose reservation fails is released at once (as a scheduler would preempt it),
 * the others go on. Returns how many reached `context`. Starting one above the model's
 * maximum shows both that the maximum is reached and that it cannot be exceeded.
 */
export function growInLockstep(layout: KvLayout, numPages: number, context: number, chunk: number, count: number): number {
  const kv = new KvBlockManager(layout, numPages, { prefixCache: false }); // no prompts: nothing to cache
  const live: number[] = [];
  for (let i = 0; i < count; i++) live.push(kv.addSequence());
  for (let len = 0; len < context && live.length > 0; ) {
    const k = Math.min(chunk, context - len);
    let kept = 0;
    for (const seq of live) {
      if (kv.tryReserve(seq, k)) {
        kv.commit(seq, k);
        live[kept++] = seq;
      } else {
        kv.release(seq);
      }
    }
    live.length = kept;
    len += k;
  }
  return live.length;
}
