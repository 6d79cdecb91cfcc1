/**
 * The paged KV block manager: one pool of fungible pages shared by every cache class, one
 * block table per sequence per class laid out as native/backend.h's PagedKv reads it.
 *
 * A step that writes positions [p, p+k) of a sequence of length p first calls reserve(seq, k):
 * sliding classes return the blocks no position >= p can reach, then the blocks covering
 * [p, p+k) that are not held yet are taken from the pool. commit(seq, k) then advances the
 * length. The counts follow lib/kv/memory-model.ts exactly (see docs/kv.md).
 *
 * Prefix caching (on unless turned off): a sequence added with its prompt starts at the
 * longest prefix whose blocks are cached (prefix-cache.ts), sharing them; its own blocks are
 * published as commits fill them, provided the manager knows their tokens (the prompt, or the
 * tokens given to commit). Blocks are reference-counted in the pool (block-pool.ts).
 */
import { randomInt } from 'node:crypto';
import { availableText, classNeedText, KvCacheFullError } from './cache-full-error.js';
import { BlockPool } from './block-pool.js';
import { checkInt, type KvLayout } from './layout.js';
import { PrefixCache, type PrefixCacheStats } from './prefix-cache.js';
import { SeqBlocks, type SeqState } from './seq-blocks.js';

export { KvCacheFullError } from './cache-full-error.js';

export interface KvBlockManagerOptions {
  /** Reuse the KV blocks of shared prompt prefixes; true unless given. */
  readonly prefixCache?: boolean;
  /** Seed of the chain keys; random unless given (keys never leave the manager). */
  readonly hashSeed?: number;
}

export interface AddSequenceOptions {
  /**
   * The prompt: with prefix caching the sequence starts at its longest cached prefix
   * (length(seq) tells how many tokens are cached; compute from there), and its blocks are
   * published as commits fill them.
   */
  readonly promptTokens?: ArrayLike<number>;
  /** Only sequences with the same salt share blocks (e.g. one salt per tenant); 0 unless given. */
  readonly salt?: number;
}

export class KvBlockManager {
  readonly numPages: number;
  private readonly blockSize: number;
  private readonly numClasses: number;
  private readonly windows: Int32Array;
  private readonly ppb: Int32Array;
  private readonly pool: BlockPool;
  private readonly prefix: PrefixCache;
  private readonly ops: SeqBlocks;
  private readonly seqs = new Map<number, SeqState>();
  private nextId = 0;
  private batchCount = 0;

  constructor(readonly layout: KvLayout, numPages: number, opts: KvBlockManagerOptions = {}) {
    checkInt('numPages', numPages, 0, 0x7fffffff);
    this.numPages = numPages;
    this.blockSize = layout.blockSize;
    this.numClasses = layout.classes.length;
    this.windows = Int32Array.from(layout.classes, (c) => c.window);
    this.ppb = Int32Array.from(layout.classes, (c) => c.pagesPerBlock);
    this.pool = new BlockPool(numPages, this.blockSize, this.ppb, opts.prefixCache ?? true);
    if (opts.hashSeed !== undefined) checkInt('hashSeed', opts.hashSeed, 0, 0xffffffff);
    const seed = opts.hashSeed ?? randomInt(0x100000000);
    this.prefix = new PrefixCache(this.pool, this.windows, this.ppb, this.blockSize, seed);
    this.ops = new SeqBlocks(this.pool, this.windows, this.ppb, this.blockSize);
  }

  get prefixCaching(): boolean {
    return this.pool.caching;
  }

  /** Pages on the free list. */
  get freePages(): number {
    return this.pool.freePages;
  }

  /** Pages of cached prefix blocks: used by no sequence, evicted (LRU) when pages run short. */
  get cachedPages(): number {
    return this.pool.cachedPages;
  }

  /** Pages a reservation may count on: free + cached. reserve succeeds iff pagesNeeded <= this. */
  get availablePages(): number {
    return this.pool.availablePages;
  }

  /** Pages in blocks that live sequences point at. */
  get usedPages(): number {
    return this.numPages - this.pool.availablePages;
  }

  get liveSequences(): number {
    return this.seqs.size;
  }

  /** Distinct blocks of class `classId` that live sequences point at (shared ones once). */
  blocksInUse(classId: number): number {
    this.checkClass(classId);
    return this.pool.usedBlocks[classId];
  }

  prefixCacheStats(): PrefixCacheStats {
    return this.prefix.stats();
  }

  /**
   * Starts a sequence; ids are never reused. With `promptTokens` and prefix caching, its
   * length is the cached prefix (a multiple of blockSize, at most promptTokens.length - 1):
   * it holds those blocks, shared, and the next step computes from length(seq).
   */
  addSequence(opts: AddSequenceOptions = {}): number {
    const salt = opts.salt ?? 0;
    checkInt('salt', salt, 0, 0xffffffff);
    const prompt = opts.promptTokens === undefined ? undefined : toTokens(opts.promptTokens);
    const s = this.ops.create(prompt);
    if (this.pool.caching) this.prefix.root(salt, s.chain);
    if (s.prompt !== undefined) {
      const n = this.prefix.match(s.prompt, s.chain);
      this.prefix.record(s.prompt.length, n);
      if (n > 0) this.ops.share(s, n, this.prefix);
    }
    const id = this.nextId++;
    this.seqs.set(id, s);
    return id;
  }

  /** Tokens of `promptTokens` that addSequence would find cached now (changes nothing). */
  matchPrefix(promptTokens: ArrayLike<number>, opts: { salt?: number } = {}): number {
    const salt = opts.salt ?? 0;
    checkInt('salt', salt, 0, 0xffffffff);
    const tokens = toTokens(promptTokens);
    if (!this.pool.caching) return 0;
    const root = { hi: 0, lo: 0 };
    this.prefix.root(salt, root);
    return this.prefix.match(tokens, root) * this.blockSize;
  }

  length(seq: number): number {
    return this.state(seq).length;
  }

  /** One past the last position the sequence's reservations cover. */
  reservedLength(seq: number): number {
    return this.state(seq).reservedEnd;
  }

  /**
   * Net pages reserve(seq, k) would take: pages it allocates minus pages its sliding classes
   * make available (blocks whose last user it is). May be negative. reserve succeeds iff this
   * <= availablePages.
   */
  pagesNeeded(seq: number, k: number): number {
    const s = this.state(seq);
    checkInt('k', k, 0);
    return this.ops.netPages(s, k, false);
  }

  /** Reserves positions [length, length + k); false (and no change at all) if the pool is short. */
  tryReserve(seq: number, k: number): boolean {
    const s = this.state(seq);
    checkInt('k', k, 0);
    if (this.ops.netPages(s, k, false) > this.pool.availablePages) return false;
    this.ops.returnUnreachable(s);
    this.ops.takeNeeded(s, k);
    return true;
  }

  /** As tryReserve, but throws KvCacheFullError when the pool is short. */
  reserve(seq: number, k: number): void {
    if (!this.tryReserve(seq, k)) throw this.fullError(seq, k);
  }

  /**
   * Reserves ks[i] tokens for every seqs[i], all or nothing. Every sequence returns its
   * unreachable blocks before any takes new ones, and a block shared by several of them
   * counts as available when all of them let it go, so the batch succeeds exactly when its
   * net need fits in availablePages.
   */
  tryReserveBatch(seqs: ArrayLike<number>, ks: ArrayLike<number>): boolean {
    if (seqs.length !== ks.length) {
      throw new RangeError(`tryReserveBatch: seqs has ${seqs.length} entries but ks has ${ks.length}`);
    }
    const mark = ++this.batchCount;
    for (let i = 0; i < seqs.length; i++) {
      const s = this.state(seqs[i]);
      if (!Number.isInteger(ks[i]) || ks[i] < 0) checkInt(`ks[${i}]`, ks[i], 0); // no string per call
      if (s.batchMark === mark) throw new RangeError(`tryReserveBatch: seqs[${i}] repeats sequence ${seqs[i]}`);
      s.batchMark = mark;
    }
    // Dry run: references are dropped as the batch would drop them, then put back.
    let net = 0;
    for (let i = 0; i < seqs.length; i++) net += this.ops.netPages(this.state(seqs[i]), ks[i], true);
    for (let i = 0; i < seqs.length; i++) this.ops.restoreDrops(this.state(seqs[i]));
    if (net > this.pool.availablePages) return false;
    for (let i = 0; i < seqs.length; i++) this.ops.returnUnreachable(this.state(seqs[i]));
    for (let i = 0; i < seqs.length; i++) this.ops.takeNeeded(this.state(seqs[i]), ks[i]);
    return true;
  }

  /** As tryReserveBatch, but throws KvCacheFullError when the pool is short. */
  reserveBatch(seqs: ArrayLike<number>, ks: ArrayLike<number>): void {
    if (this.tryReserveBatch(seqs, ks)) return;
    let net = 0;
    for (let i = 0; i < seqs.length; i++) net += this.ops.netPages(this.state(seqs[i]), ks[i], true);
    for (let i = 0; i < seqs.length; i++) this.ops.restoreDrops(this.state(seqs[i]));
    const { freePages, cachedPages } = this.pool;
    throw new KvCacheFullError(
      `KV cache full: a batch of ${seqs.length} sequences needs ${net} more pages but ` +
        availableText(freePages, cachedPages, this.numPages),
      { pagesNeeded: net, freePages, cachedPages },
    );
  }

  /**
   * Advances the length by k tokens, which must lie within the reservation. `tokens` (k of
   * them) are the tokens just computed; with prefix caching the blocks they fill are
   * published under their chain keys. Without them, the prompt given to addSequence stands
   * in; past it the sequence's later blocks are simply not cached.
   */
  commit(seq: number, k: number, tokens?: ArrayLike<number>): void {
    const s = this.state(seq);
    checkInt('k', k, 0);
    if (s.length + k > s.reservedEnd) {
      throw new RangeError(
        `commit(seq ${seq}, k ${k}): only ${s.reservedEnd - s.length} tokens are reserved past length ${s.length}`,
      );
    }
    if (tokens !== undefined && tokens.length !== k) {
      throw new RangeError(`commit(seq ${seq}, k ${k}): tokens has ${tokens.length} entries`);
    }
    if (s.hashable) this.absorb(s, k, tokens);
    s.length += k;
  }

  /** Ends the sequence; its blocks go back to the pool (full, keyed ones into the cache). */
  release(seq: number): void {
    this.ops.releaseAll(this.state(seq));
    this.seqs.delete(seq);
  }

  /**
   * The block table row of (seq, classId): entry b*pagesPerBlock + slot holds the page of
   * owner `slot` for logical block b, or -1. Only the first tableLength() entries are in use.
   * reserve() may replace the row with a longer one: fetch it again after reserving.
   */
  table(seq: number, classId: number): Int32Array {
    const s = this.state(seq);
    this.checkClass(classId);
    return s.tables[classId];
  }

  /** Entries of table(seq, classId) in use: blocks covered so far × pagesPerBlock. */
  tableLength(seq: number, classId: number): number {
    const s = this.state(seq);
    this.checkClass(classId);
    return s.end[classId] * this.ppb[classId];
  }

  /** Blocks class `classId` holds for the sequence now. */
  blocksHeld(seq: number, classId: number): number {
    const s = this.state(seq);
    this.checkClass(classId);
    return s.end[classId] - s.first[classId];
  }

  /** First block class `classId` still holds for the sequence (earlier ones were returned). */
  firstHeldBlock(seq: number, classId: number): number {
    const s = this.state(seq);
    this.checkClass(classId);
    return s.first[classId];
  }

  /** Sequences pointing at the sequence's block b of class classId (0 if it holds none). */
  blockRefCount(seq: number, classId: number, block: number): number {
    const s = this.state(seq);
    this.checkClass(classId);
    if (block < s.first[classId] || block >= s.end[classId]) return 0;
    return this.pool.refCount(s.tables[classId][block * this.ppb[classId]]);
  }

  /** Free page ids, and cached ones least recently cached first (tests, debugging; allocates). */
  pageIds(): { free: Int32Array; cached: number[] } {
    return { free: this.pool.freePageIds(), cached: this.pool.cachedPageIds() };
  }

  /** Records committed tokens; each block they fill is published. */
  private absorb(s: SeqState, k: number, tokens: ArrayLike<number> | undefined): void {
    const B = this.blockSize;
    const partial = s.partial!;
    for (let j = 0; j < k; j++) {
      const pos = s.length + j;
      const t = tokens !== undefined ? tokens[j] : s.prompt !== undefined && pos < s.prompt.length ? s.prompt[pos] : -1;
      if ((t | 0) !== t || t < 0) {
        s.hashable = false; // unknown token: the chain cannot go on
        return;
      }
      partial[pos % B] = t;
      if ((pos + 1) % B === 0) this.prefix.publish(s.tables, (pos + 1) / B - 1, s.chain, partial, 0);
    }
  }

  private state(seq: number): SeqState {
    const s = this.seqs.get(seq);
    if (s === undefined) {
      throw new RangeError(`seq ${String(seq)} is not a live sequence (never added, or already released)`);
    }
    return s;
  }

  private checkClass(classId: number): void {
    if (!Number.isInteger(classId) || classId < 0 || classId >= this.numClasses) {
      throw new RangeError(`classId must be an integer in [0, ${this.numClasses - 1}], got ${String(classId)}`);
    }
  }

  /** Builds the error reserve() throws, with the per-class breakdown (slow path only). */
  private fullError(seq: number, k: number): KvCacheFullError {
    const s = this.state(seq);
    const p = s.length;
    const parts: string[] = [];
    for (let c = 0; c < this.numClasses; c++) parts.push(classNeedText(c, this.ops.classNeed(s, c, k)));
    const needed = this.ops.netPages(s, k, false);
    const { freePages, cachedPages } = this.pool;
    return new KvCacheFullError(
      `KV cache full: sequence ${seq} needs ${needed} more pages to reserve ${k} tokens at position ${p}, ` +
        `but ${availableText(freePages, cachedPages, this.numPages)}; ${parts.join('; ')}`,
      { seq, pagesNeeded: needed, freePages, cachedPages },
    );
  }
}

/** The prompt as int32 token ids (validated: integers in [0, 2^31)). */
function toTokens(tokens: ArrayLike<number>): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 0x7fffffff) {
      throw new RangeError(`promptTokens[${i}] must be a token id (an integer >= 0), got ${String(t)}`);
    }
    out[i] = t;
  }
  return out;
}
