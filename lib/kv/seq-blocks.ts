/**
 * A sequence's block tables and the block moves of reserving and releasing, on top of the
 * reference-counted pool (block-pool.ts). The block manager validates and orchestrates; the
 * arithmetic of what a step returns and takes lives here (docs/kv.md, "Steps").
 */
import type { BlockPool } from './block-pool.js';
import type { ChainKey } from './chain-hash.js';
import type { ClassNeed } from './cache-full-error.js';
import { firstLiveBlock } from './memory-model.js';
import type { PrefixCache } from './prefix-cache.js';

export interface SeqState {
  length: number;
  /** One past the last position covered by a reservation. */
  reservedEnd: number;
  /** Last batch that named this sequence (catches repeats without allocating). */
  batchMark: number;
  /** Per class: held blocks are [first[c], end[c]); table entries outside hold -1. */
  readonly first: Int32Array;
  readonly end: Int32Array;
  readonly tables: Int32Array[];
  /** Prefix caching: the prompt, the block being filled, the chain key of the last full block. */
  readonly prompt: Int32Array | undefined;
  readonly partial: Int32Array | undefined;
  readonly chain: ChainKey;
  /** False once a committed token is unknown: no later block can be keyed. */
  hashable: boolean;
}

const INITIAL_TABLE_BLOCKS = 8;

export class SeqBlocks {
  private readonly numClasses: number;

  constructor(
    private readonly pool: BlockPool,
    private readonly windows: Int32Array,
    private readonly ppb: Int32Array,
    private readonly B: number,
  ) {
    this.numClasses = windows.length;
  }

  create(prompt: Int32Array | undefined): SeqState {
    const caching = this.pool.caching;
    const tables: Int32Array[] = [];
    for (let c = 0; c < this.numClasses; c++) tables.push(new Int32Array(INITIAL_TABLE_BLOCKS * this.ppb[c]).fill(-1));
    return {
      length: 0,
      reservedEnd: 0,
      batchMark: 0,
      first: new Int32Array(this.numClasses),
      end: new Int32Array(this.numClasses),
      tables,
      prompt: caching ? prompt : undefined,
      partial: caching ? new Int32Array(this.B) : undefined,
      chain: { hi: 0, lo: 0 },
      hashable: caching,
    };
  }

  /**
   * Pages reserving k would take minus pages it makes available (returned blocks whose last
   * user this sequence is). With keepDrops the references of returned blocks stay dropped —
   * a batch's dry run, so that a block shared within the batch counts once all let it go;
   * restoreDrops undoes it.
   */
  netPages(s: SeqState, k: number, keepDrops: boolean): number {
    const endNeeded = Math.ceil((s.length + k) / this.B);
    let net = 0;
    for (let c = 0; c < this.numClasses; c++) {
      const ppb = this.ppb[c];
      const first = this.firstAfter(s, c);
      net += ppb * Math.max(0, endNeeded - Math.max(s.end[c], first));
      const table = s.tables[c];
      for (let b = s.first[c], e = Math.min(s.end[c], first); b < e; b++) {
        const head = table[b * ppb];
        if (this.pool.dropRefDry(head)) net -= ppb;
        if (!keepDrops) this.pool.restoreRefDry(head);
      }
    }
    return net;
  }

  restoreDrops(s: SeqState): void {
    for (let c = 0; c < this.numClasses; c++) {
      for (let b = s.first[c], e = Math.min(s.end[c], this.firstAfter(s, c)); b < e; b++) {
        this.pool.restoreRefDry(s.tables[c][b * this.ppb[c]]);
      }
    }
  }

  /** Sliding classes return the blocks no position >= length can reach. */
  returnUnreachable(s: SeqState): void {
    for (let c = 0; c < this.numClasses; c++) {
      const f0 = s.first[c];
      const e0 = s.end[c];
      const first = this.firstAfter(s, c);
      this.returnBlocks(s, c, f0, Math.min(e0, first));
      s.first[c] = first;
      s.end[c] = Math.max(e0, first);
    }
  }

  /** Takes the blocks covering [length, length + k) not held yet (the caller checked the pool). */
  takeNeeded(s: SeqState, k: number): void {
    const endNeeded = Math.ceil((s.length + k) / this.B);
    for (let c = 0; c < this.numClasses; c++) {
      if (endNeeded <= s.end[c]) continue;
      this.ensureTable(s, c, endNeeded);
      for (let b = s.end[c]; b < endNeeded; b++) this.pool.takeBlock(c, s.tables[c], b * this.ppb[c]);
      s.end[c] = endNeeded;
    }
    s.reservedEnd = Math.max(s.reservedEnd, s.length + k);
  }

  /** Points the sequence's tables at the cached blocks of the prefix.match() that found n blocks. */
  share(s: SeqState, n: number, prefix: PrefixCache): void {
    for (let c = 0; c < this.numClasses; c++) {
      const first = prefix.firstBlock(c, n);
      this.ensureTable(s, c, n);
      for (let b = first; b < n; b++) {
        const head = prefix.head(c, b);
        this.pool.retain(head);
        this.pool.copyPages(head, s.tables[c], b * this.ppb[c]);
      }
      s.first[c] = first;
      s.end[c] = n;
    }
    s.length = s.reservedEnd = n * this.B;
    prefix.chainKey(n - 1, s.chain);
  }

  /**
   * Returns every block. With prefix caching the deepest blocks go first, so the LRU list
   * evicts a prefix's tail before its head; without, the order is per class, ascending.
   */
  releaseAll(s: SeqState): void {
    if (!this.pool.caching) {
      for (let c = 0; c < this.numClasses; c++) this.returnBlocks(s, c, s.first[c], s.end[c]);
      return;
    }
    let top = 0;
    for (let c = 0; c < this.numClasses; c++) top = Math.max(top, s.end[c]);
    for (let b = top - 1; b >= 0; b--) {
      for (let c = 0; c < this.numClasses; c++) if (b >= s.first[c] && b < s.end[c]) this.returnBlocks(s, c, b, b + 1);
    }
  }

  /** Blocks class c would take and return for reserve(s, k), for error messages. */
  classNeed(s: SeqState, c: number, k: number): ClassNeed {
    const first = this.firstAfter(s, c);
    return {
      window: this.windows[c],
      pagesPerBlock: this.ppb[c],
      takenBlocks: Math.max(0, Math.ceil((s.length + k) / this.B) - Math.max(s.end[c], first)),
      returnedBlocks: Math.min(s.end[c], first) - s.first[c],
    };
  }

  /** First block class c must hold once the sequence's next position is its length. */
  private firstAfter(s: SeqState, c: number): number {
    return Math.max(s.first[c], firstLiveBlock(this.windows[c], this.B, s.length));
  }

  private returnBlocks(s: SeqState, c: number, from: number, to: number): void {
    const ppb = this.ppb[c];
    const table = s.tables[c];
    for (let b = from; b < to; b++) {
      this.pool.release(table[b * ppb]);
      table.fill(-1, b * ppb, (b + 1) * ppb);
    }
  }

  private ensureTable(s: SeqState, c: number, blocks: number): void {
    const table = s.tables[c];
    const need = blocks * this.ppb[c];
    if (table.length >= need) return;
    // Doubling keeps growth amortised O(1) per block.
    const grown = new Int32Array(Math.max(need, 2 * table.length)).fill(-1);
    grown.set(table);
    s.tables[c] = grown;
  }
}
