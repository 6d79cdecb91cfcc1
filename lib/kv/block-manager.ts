/**
 * The paged KV block manager: one pool of fungible pages shared by every cache class, one
 * block table per sequence per class laid out as native/backend.h's PagedKv reads it.
 *
 * A step that writes positions [p, p+k) of a sequence of length p first calls reserve(seq, k):
 * sliding classes return the blocks no position >= p can reach, then the blocks covering
 * [p, p+k) that are not held yet are taken from the pool. commit(seq, k) then advances the
 * length. The counts follow lib/kv/memory-model.ts exactly (see docs/kv.md).
 */
import { checkInt, type KvLayout } from './layout.js';
import { firstLiveBlock } from './memory-model.js';

/** Thrown when the pool cannot cover a reservation; nothing was changed. */
export class KvCacheFullError extends Error {
  /** The sequence whose reservation failed, when there is one. */
  readonly seq?: number;
  /** Pages the reservation would take from the pool (net of the pages it returns). */
  readonly pagesNeeded?: number;
  readonly freePages?: number;

  constructor(message: string, info: { seq?: number; pagesNeeded?: number; freePages?: number } = {}) {
    super(message);
    this.name = 'KvCacheFullError';
    this.seq = info.seq;
    this.pagesNeeded = info.pagesNeeded;
    this.freePages = info.freePages;
  }
}

interface SeqState {
  length: number;
  /** One past the last position covered by a reservation. */
  reservedEnd: number;
  /** Last batch that named this sequence (catches repeats without allocating). */
  batchMark: number;
  /** Per class: held blocks are [first[c], end[c]); table entries outside hold -1. */
  readonly first: Int32Array;
  readonly end: Int32Array;
  readonly tables: Int32Array[];
}

const INITIAL_TABLE_BLOCKS = 8;

export class KvBlockManager {
  readonly numPages: number;
  private readonly blockSize: number;
  private readonly numClasses: number;
  private readonly windows: Int32Array;
  private readonly ppb: Int32Array;
  private readonly classBlocks: Float64Array;
  /** Free page ids; the top of the stack is freeStack[freeTop - 1] (LIFO reuse). */
  private readonly freeStack: Int32Array;
  private freeTop: number;
  private readonly seqs = new Map<number, SeqState>();
  private nextId = 0;
  private batchCount = 0;

  constructor(readonly layout: KvLayout, numPages: number) {
    checkInt('numPages', numPages, 0, 0x7fffffff);
    this.numPages = numPages;
    this.blockSize = layout.blockSize;
    this.numClasses = layout.classes.length;
    this.windows = Int32Array.from(layout.classes, (c) => c.window);
    this.ppb = Int32Array.from(layout.classes, (c) => c.pagesPerBlock);
    this.classBlocks = new Float64Array(this.numClasses);
    this.freeStack = new Int32Array(numPages);
    for (let i = 0; i < numPages; i++) this.freeStack[i] = numPages - 1 - i; // page 0 first
    this.freeTop = numPages;
  }

  get freePages(): number {
    return this.freeTop;
  }

  get usedPages(): number {
    return this.numPages - this.freeTop;
  }

  get liveSequences(): number {
    return this.seqs.size;
  }

  /** Blocks class `classId` holds across all live sequences. */
  blocksInUse(classId: number): number {
    this.checkClass(classId);
    return this.classBlocks[classId];
  }

  /** Starts an empty sequence; ids are never reused. */
  addSequence(): number {
    const id = this.nextId++;
    const tables: Int32Array[] = [];
    for (let c = 0; c < this.numClasses; c++) tables.push(new Int32Array(INITIAL_TABLE_BLOCKS * this.ppb[c]).fill(-1));
    this.seqs.set(id, {
      length: 0,
      reservedEnd: 0,
      batchMark: 0,
      first: new Int32Array(this.numClasses),
      end: new Int32Array(this.numClasses),
      tables,
    });
    return id;
  }

  length(seq: number): number {
    return this.state(seq).length;
  }

  /** One past the last position the sequence's reservations cover. */
  reservedLength(seq: number): number {
    return this.state(seq).reservedEnd;
  }

  /**
   * Net pages reserve(seq, k) would take from the pool: pages it allocates minus pages its
   * sliding classes return first. May be negative. reserve succeeds iff this <= freePages.
   */
  pagesNeeded(seq: number, k: number): number {
    const s = this.state(seq);
    checkInt('k', k, 0);
    return this.netPages(s, k);
  }

  /** Reserves positions [length, length + k); false (and no change) if the pool is short. */
  tryReserve(seq: number, k: number): boolean {
    const s = this.state(seq);
    checkInt('k', k, 0);
    if (this.netPages(s, k) > this.freeTop) return false;
    this.apply(s, k);
    return true;
  }

  /** As tryReserve, but throws KvCacheFullError when the pool is short. */
  reserve(seq: number, k: number): void {
    if (!this.tryReserve(seq, k)) throw this.fullError(seq, k);
  }

  /**
   * Reserves ks[i] tokens for every seqs[i], all or nothing. Sequences that return pages go
   * first, so the batch succeeds whenever the sum of pagesNeeded fits in freePages (in
   * another order a sequence could fail before a later one has returned its pages).
   */
  tryReserveBatch(seqs: ArrayLike<number>, ks: ArrayLike<number>): boolean {
    if (seqs.length !== ks.length) {
      throw new RangeError(`tryReserveBatch: seqs has ${seqs.length} entries but ks has ${ks.length}`);
    }
    const mark = ++this.batchCount;
    let net = 0;
    for (let i = 0; i < seqs.length; i++) {
      const s = this.state(seqs[i]);
      if (!Number.isInteger(ks[i]) || ks[i] < 0) checkInt(`ks[${i}]`, ks[i], 0); // no string per call
      if (s.batchMark === mark) throw new RangeError(`tryReserveBatch: seqs[${i}] repeats sequence ${seqs[i]}`);
      s.batchMark = mark;
      net += this.netPages(s, ks[i]);
    }
    if (net > this.freeTop) return false;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < seqs.length; i++) {
        const s = this.state(seqs[i]);
        if ((this.netPages(s, ks[i]) <= 0) === (pass === 0)) this.apply(s, ks[i]);
      }
    }
    return true;
  }

  /** As tryReserveBatch, but throws KvCacheFullError when the pool is short. */
  reserveBatch(seqs: ArrayLike<number>, ks: ArrayLike<number>): void {
    if (this.tryReserveBatch(seqs, ks)) return;
    let net = 0;
    for (let i = 0; i < seqs.length; i++) net += this.pagesNeeded(seqs[i], ks[i]);
    throw new KvCacheFullError(
      `KV cache full: a batch of ${seqs.length} sequences needs ${net} more pages but ${this.freeTop} of ` +
        `${this.numPages} are free`,
      { pagesNeeded: net, freePages: this.freeTop },
    );
  }

  /** Advances the length by k tokens, which must lie within the reservation. */
  commit(seq: number, k: number): void {
    const s = this.state(seq);
    checkInt('k', k, 0);
    if (s.length + k > s.reservedEnd) {
      throw new RangeError(
        `commit(seq ${seq}, k ${k}): only ${s.reservedEnd - s.length} tokens are reserved past length ${s.length}`,
      );
    }
    s.length += k;
  }

  /** Ends the sequence and returns all its pages. */
  release(seq: number): void {
    const s = this.state(seq);
    for (let c = 0; c < this.numClasses; c++) this.returnBlocks(s, c, s.first[c], s.end[c]);
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

  private netPages(s: SeqState, k: number): number {
    const B = this.blockSize;
    const p = s.length;
    const endNeeded = Math.ceil((p + k) / B);
    let net = 0;
    for (let c = 0; c < this.numClasses; c++) {
      const f0 = s.first[c];
      const e0 = s.end[c];
      const first = Math.max(f0, firstLiveBlock(this.windows[c], B, p));
      const returned = Math.min(e0, first) - f0;
      const taken = Math.max(0, endNeeded - Math.max(e0, first));
      net += this.ppb[c] * (taken - returned);
    }
    return net;
  }

  /** Returns the unreachable blocks, then takes the missing ones (the pool suffices). */
  private apply(s: SeqState, k: number): void {
    const B = this.blockSize;
    const p = s.length;
    const endNeeded = Math.ceil((p + k) / B);
    for (let c = 0; c < this.numClasses; c++) {
      const f0 = s.first[c];
      const e0 = s.end[c];
      const first = Math.max(f0, firstLiveBlock(this.windows[c], B, p));
      this.returnBlocks(s, c, f0, Math.min(e0, first));
      const start = Math.max(e0, first);
      const end = Math.max(start, endNeeded);
      this.takeBlocks(s, c, start, end);
      s.first[c] = first;
      s.end[c] = end;
    }
    s.reservedEnd = Math.max(s.reservedEnd, p + k);
  }

  private returnBlocks(s: SeqState, c: number, from: number, to: number): void {
    if (to <= from) return;
    const ppb = this.ppb[c];
    const table = s.tables[c];
    for (let i = from * ppb, e = to * ppb; i < e; i++) {
      this.freeStack[this.freeTop++] = table[i];
      table[i] = -1;
    }
    this.classBlocks[c] -= to - from;
  }

  private takeBlocks(s: SeqState, c: number, from: number, to: number): void {
    if (to <= from) return;
    const ppb = this.ppb[c];
    let table = s.tables[c];
    if (table.length < to * ppb) {
      // Doubling keeps growth amortised O(1) per block.
      const grown = new Int32Array(Math.max(to * ppb, 2 * table.length)).fill(-1);
      grown.set(table);
      s.tables[c] = table = grown;
    }
    for (let i = from * ppb, e = to * ppb; i < e; i++) table[i] = this.freeStack[--this.freeTop];
    this.classBlocks[c] += to - from;
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
    const B = this.blockSize;
    const p = s.length;
    const endNeeded = Math.ceil((p + k) / B);
    const parts: string[] = [];
    for (let c = 0; c < this.numClasses; c++) {
      const first = Math.max(s.first[c], firstLiveBlock(this.windows[c], B, p));
      const returned = Math.min(s.end[c], first) - s.first[c];
      const taken = Math.max(0, endNeeded - Math.max(s.end[c], first));
      const kind = this.windows[c] === 0 ? 'global' : `sliding ${this.windows[c]}`;
      parts.push(
        `class ${c} (${kind}, ${this.ppb[c]} pages/block): takes ${taken * this.ppb[c]} pages, returns ${returned * this.ppb[c]}`,
      );
    }
    const needed = this.netPages(s, k);
    return new KvCacheFullError(
      `KV cache full: sequence ${seq} needs ${needed} more pages to reserve ${k} tokens at position ${p}, ` +
        `but ${this.freeTop} of ${this.numPages} are free; ${parts.join('; ')}`,
      { seq, pagesNeeded: needed, freePages: this.freeTop },
    );
  }
}
