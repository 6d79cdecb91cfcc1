/**
 * Prefix caching over the block pool: finding the longest cached prefix of a prompt that
 * every cache class can serve, publishing a sequence's blocks as they fill, and the counters
 * (docs/kv.md, "Prefix caching").
 *
 * The rule for a hit of P tokens (P a multiple of blockSize, P <= prompt length - 1 so that at
 * least the last prompt token is computed and gives logits): the next position computed is
 * P, which attends [P-W+1, P] in a sliding class of window W and [0, P] in a global one. So a
 * global class needs blocks 0 .. P/B-1 cached, a sliding class only the blocks from
 * firstLiveBlock(W, B, P) to P/B-1 — exactly the blocks a sequence at length P holds. That
 * is what lets MixAttention plans hit as often as full attention while keeping only windows.
 */
import { blockKey, mapKey, rootKey, type ChainKey } from './chain-hash.js';
import type { BlockPool } from './block-pool.js';
import { firstLiveBlock } from './memory-model.js';

export interface PrefixCacheClassStats {
  /** Blocks this class would have to hold for the hits asked for (their capped full prefix). */
  readonly queryBlocks: number;
  /** Of those, the blocks taken from the cache. */
  readonly hitBlocks: number;
  /** Blocks held by no sequence, kept for reuse now. */
  readonly cachedBlocks: number;
  /** Cached blocks evicted so far to make room. */
  readonly evictedBlocks: number;
}

export interface PrefixCacheStats {
  readonly enabled: boolean;
  /** Sequences added with prompt tokens. */
  readonly queries: number;
  /** Their prompt tokens, and the leading ones found cached (not computed again). */
  readonly queryTokens: number;
  readonly hitTokens: number;
  /** Full blocks a hit could have covered (floor((length-1)/blockSize) per prompt), and did. */
  readonly queryBlocks: number;
  readonly hitBlocks: number;
  readonly classes: readonly PrefixCacheClassStats[];
}

export class PrefixCache {
  private readonly B: number;
  private readonly numClasses: number;
  /** Scratch of the last match, capacity `cap` blocks: heads per class, chain keys per block. */
  private cap = 0;
  private heads = new Int32Array(0);
  private runStart = new Int32Array(0);
  private keysHi = new Int32Array(0);
  private keysLo = new Int32Array(0);
  private readonly key: ChainKey = { hi: 0, lo: 0 };
  private readonly parent: ChainKey = { hi: 0, lo: 0 };
  private queries = 0;
  private queryTokens = 0;
  private hitTokens = 0;
  private queryBlocks = 0;
  private hitBlocks = 0;
  private readonly classQuery: Float64Array;
  private readonly classHit: Float64Array;

  constructor(
    private readonly pool: BlockPool,
    private readonly windows: Int32Array,
    private readonly ppb: Int32Array,
    blockSize: number,
    private readonly seed: number,
  ) {
    this.B = blockSize;
    this.numClasses = windows.length;
    this.classQuery = new Float64Array(this.numClasses);
    this.classHit = new Float64Array(this.numClasses);
  }

  /** key_{-1} of a sequence with this salt. */
  root(salt: number, out: ChainKey): void {
    rootKey(this.seed, salt, out);
  }

  /**
   * The longest prefix, in blocks, of `tokens` (chain root `root`) that every class can
   * serve from the cache, under the rule above. Afterwards head(c, b) names class c's block b
   * for b in [firstBlock(c, n), n), and chainKey(n - 1, out) the chain key of the last one.
   */
  match(tokens: Int32Array, root: ChainKey): number {
    const B = this.B;
    const maxN = tokens.length > 0 ? Math.floor((tokens.length - 1) / B) : 0;
    this.ensure(maxN);
    const cap = this.cap;
    let globalRun = maxN; // blocks [0, globalRun) are cached in every global class
    this.parent.hi = root.hi;
    this.parent.lo = root.lo;
    for (let b = 0; b < globalRun; b++) {
      blockKey(this.parent.hi, this.parent.lo, tokens, b * B, B, this.key);
      const mk = mapKey(this.key.hi, this.key.lo);
      this.keysHi[b] = this.key.hi;
      this.keysLo[b] = this.key.lo;
      for (let c = 0; c < this.numClasses; c++) {
        const head = this.pool.lookup(c, mk, this.parent, tokens, b * B);
        const i = c * cap + b;
        this.heads[i] = head;
        if (this.windows[c] === 0) {
          if (head < 0) globalRun = Math.min(globalRun, b);
        } else {
          // runStart: first block of the run of cached blocks ending at b (b + 1 if b missed)
          this.runStart[i] = head < 0 ? b + 1 : b > 0 && this.heads[i - 1] >= 0 ? this.runStart[i - 1] : b;
        }
      }
      this.parent.hi = this.key.hi;
      this.parent.lo = this.key.lo;
    }
    // Sliding classes need only their window's blocks, so a longer prefix can hit where a
    // shorter one misses: try every length from the longest down.
    for (let n = globalRun; n > 0; n--) {
      let ok = true;
      for (let c = 0; c < this.numClasses && ok; c++) {
        if (this.windows[c] === 0) continue;
        const first = firstLiveBlock(this.windows[c], B, n * B);
        ok = first >= n || this.runStart[c * cap + n - 1] <= first;
      }
      if (ok) return n;
    }
    return 0;
  }

  /** First block class c holds at length n·blockSize (0 for a global class). */
  firstBlock(c: number, n: number): number {
    return Math.min(n, firstLiveBlock(this.windows[c], this.B, n * this.B));
  }

  /** Class c's block b found by the last match. */
  head(c: number, b: number): number {
    return this.heads[c * this.cap + b];
  }

  /** The chain key of block b of the last match. */
  chainKey(b: number, out: ChainKey): void {
    out.hi = this.keysHi[b];
    out.lo = this.keysLo[b];
  }

  /** Counts a lookup of a prompt of `length` tokens that hit `n` blocks. */
  record(length: number, n: number): void {
    const maxN = length > 0 ? Math.floor((length - 1) / this.B) : 0;
    this.queries++;
    this.queryTokens += length;
    this.hitTokens += n * this.B;
    this.queryBlocks += maxN;
    this.hitBlocks += n;
    for (let c = 0; c < this.numClasses; c++) {
      this.classQuery[c] += maxN - this.firstBlock(c, maxN);
      this.classHit[c] += n - this.firstBlock(c, n);
    }
  }

  /**
   * Publishes block b of a sequence (now full): its key follows from `chain` (the key of block
   * b-1, updated in place to block b's) and tokens[from .. from+B); every class's block b,
   * read from the sequence's tables, goes into that class's map.
   */
  publish(tables: readonly Int32Array[], b: number, chain: ChainKey, tokens: Int32Array, from: number): void {
    blockKey(chain.hi, chain.lo, tokens, from, this.B, this.key);
    const mk = mapKey(this.key.hi, this.key.lo);
    for (let c = 0; c < this.numClasses; c++) {
      this.pool.publish(c, tables[c][b * this.ppb[c]], mk, chain, tokens, from);
    }
    chain.hi = this.key.hi;
    chain.lo = this.key.lo;
  }

  stats(): PrefixCacheStats {
    const classes: PrefixCacheClassStats[] = [];
    for (let c = 0; c < this.numClasses; c++) {
      classes.push({
        queryBlocks: this.classQuery[c],
        hitBlocks: this.classHit[c],
        cachedBlocks: this.pool.cachedBlocks[c],
        evictedBlocks: this.pool.evictedBlocks[c],
      });
    }
    return {
      enabled: this.pool.caching,
      queries: this.queries,
      queryTokens: this.queryTokens,
      hitTokens: this.hitTokens,
      queryBlocks: this.queryBlocks,
      hitBlocks: this.hitBlocks,
      classes,
    };
  }

  private ensure(blocks: number): void {
    if (blocks <= this.cap) return;
    const cap = Math.max(blocks, 2 * this.cap, 16);
    this.cap = cap;
    this.heads = new Int32Array(cap * this.numClasses);
    this.runStart = new Int32Array(cap * this.numClasses);
    this.keysHi = new Int32Array(cap);
    this.keysLo = new Int32Array(cap);
  }
}
