/**
 * The page pool under the block manager: free pages, class blocks with reference counts, and
 * (with prefix caching) the cached blocks: full blocks no sequence uses any more, kept under
 * their chain key until the pool needs their pages (docs/kv.md, "Prefix caching").
 *
 * A class block is `pagesPerBlock` pages taken together; its first page (the *head*) names it.
 * All per-block state lives in typed arrays indexed by the head page, and a block's pages are
 * linked head → … → -1 in slot order, so nothing here allocates per block or per token.
 *
 * Page states: free (on the stack), used (in a block some sequence's table points at) or
 * cached (in a block with no users, on the LRU list and in its class's key map). Allocation
 * takes free pages first and evicts the least recently cached blocks when they run out, so
 * the pages a reservation may count on are free + cached (`availablePages`).
 */
import type { ChainKey } from './chain-hash.js';

const NONE = -1;

export class BlockPool {
  readonly numPages: number;
  readonly caching: boolean;
  private readonly B: number;
  private readonly ppb: Int32Array;
  /** Free page ids; the top is freeStack[freeTop - 1] (LIFO reuse). */
  private readonly freeStack: Int32Array;
  private freeTop: number;
  /** Per head page: the tables pointing at the block. */
  private readonly refs: Int32Array;
  /** Per page: the next page of its block in slot order, -1 after the last. */
  private readonly next: Int32Array;
  /** Per head page: the block's class. */
  private readonly headClass: Int32Array;
  // Prefix caching only (empty arrays otherwise):
  /** Per head page: the map key of a full, hashed block, or -1. */
  private readonly key: Float64Array;
  /** Per head page: the parent's chain key and the block's tokens, checked before sharing. */
  private readonly parentHi: Int32Array;
  private readonly parentLo: Int32Array;
  private readonly tokens: Int32Array;
  private readonly inMap: Uint8Array;
  /** LRU of cached blocks as a doubly linked list through head pages; sentinel numPages. */
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private readonly maps: Map<number, number>[];
  private cached = 0;
  /** Per class: distinct blocks with users, blocks cached, blocks evicted so far. */
  readonly usedBlocks: Float64Array;
  readonly cachedBlocks: Float64Array;
  readonly evictedBlocks: Float64Array;

  constructor(numPages: number, blockSize: number, pagesPerBlock: Int32Array, caching: boolean) {
    this.numPages = numPages;
    this.caching = caching;
    this.B = blockSize;
    this.ppb = pagesPerBlock;
    const n = pagesPerBlock.length;
    this.freeStack = new Int32Array(numPages);
    for (let i = 0; i < numPages; i++) this.freeStack[i] = numPages - 1 - i; // page 0 first
    this.freeTop = numPages;
    this.refs = new Int32Array(numPages);
    this.next = new Int32Array(numPages).fill(NONE);
    this.headClass = new Int32Array(numPages).fill(NONE);
    const m = caching ? numPages : 0;
    this.key = new Float64Array(m).fill(NONE);
    this.parentHi = new Int32Array(m);
    this.parentLo = new Int32Array(m);
    this.tokens = new Int32Array(m * blockSize);
    this.inMap = new Uint8Array(m);
    this.lruPrev = new Int32Array(caching ? numPages + 1 : 0);
    this.lruNext = new Int32Array(caching ? numPages + 1 : 0);
    if (caching) this.lruPrev[numPages] = this.lruNext[numPages] = numPages;
    this.maps = Array.from({ length: n }, () => new Map<number, number>());
    this.usedBlocks = new Float64Array(n);
    this.cachedBlocks = new Float64Array(n);
    this.evictedBlocks = new Float64Array(n);
  }

  get freePages(): number {
    return this.freeTop;
  }

  get cachedPages(): number {
    return this.cached;
  }

  /** Pages a reservation may count on: free ones plus those of cached (evictable) blocks. */
  get availablePages(): number {
    return this.freeTop + this.cached;
  }

  refCount(head: number): number {
    return this.refs[head];
  }

  /**
   * Takes a new block of class c into table[off .. off+ppb): free pages first, evicting cached
   * blocks while fewer than ppb are free. The caller has checked availablePages.
   */
  takeBlock(c: number, table: Int32Array, off: number): void {
    const ppb = this.ppb[c];
    while (this.freeTop < ppb) {
      if (this.cached === 0) throw new Error('BlockPool: out of pages (a reservation was not checked)');
      this.evict(this.lruNext[this.numPages]);
    }
    let prev = NONE;
    for (let i = off, e = off + ppb; i < e; i++) {
      const page = this.freeStack[--this.freeTop];
      table[i] = page;
      if (prev !== NONE) this.next[prev] = page;
      prev = page;
    }
    this.next[prev] = NONE;
    const head = table[off];
    this.refs[head] = 1;
    this.headClass[head] = c;
    this.usedBlocks[c]++;
  }

  /** Writes the pages of the block headed by `head` into table[off ..], in slot order. */
  copyPages(head: number, table: Int32Array, off: number): void {
    for (let p = head; p !== NONE; p = this.next[p]) table[off++] = p;
  }

  /** One more table points at the block; a cached block leaves the LRU list. */
  retain(head: number): void {
    if (this.refs[head]++ > 0) return;
    const c = this.headClass[head];
    this.lruUnlink(head);
    this.cached -= this.ppb[c];
    this.cachedBlocks[c]--;
    this.usedBlocks[c]++;
  }

  /**
   * One table fewer points at the block. With no users left a full, hashed block is cached
   * (newest in the LRU) if its key is in the map or free to take; anything else is freed.
   */
  release(head: number): void {
    if (--this.refs[head] > 0) return;
    const c = this.headClass[head];
    this.usedBlocks[c]--;
    if (this.caching && this.key[head] !== NONE && (this.inMap[head] === 1 || this.insert(c, head))) {
      this.lruPush(head);
      this.cached += this.ppb[c];
      this.cachedBlocks[c]++;
    } else {
      this.freeBlock(head);
    }
  }

  /** Dry-run accounting: drops a reference without any other effect; true if none is left. */
  dropRefDry(head: number): boolean {
    return --this.refs[head] === 0;
  }

  /** Undoes dropRefDry. */
  restoreRefDry(head: number): void {
    this.refs[head]++;
  }

  /**
   * Records that a full block now holds the K/V of the chain with map key `mk`, whose parent
   * is `parent`, for tokens[from .. from+B). It joins the map unless the key is there already
   * (another sequence computed the same prefix at the same time): then it stays private and
   * is offered to the map again when its last user lets it go.
   */
  publish(c: number, head: number, mk: number, parent: ChainKey, tokens: Int32Array, from: number): void {
    this.key[head] = mk;
    this.parentHi[head] = parent.hi;
    this.parentLo[head] = parent.lo;
    // The key itself follows from parent and tokens; only its map form is kept.
    for (let i = 0, base = head * this.B; i < this.B; i++) this.tokens[base + i] = tokens[from + i];
    this.insert(c, head);
  }

  /**
   * The head of class c's cached or shared block for map key `mk`, if it really holds the
   * tokens tokens[from .. from+B) after the chain `parent`; else -1. Checking parent and
   * tokens means a false hit needs a 64-bit collision of parent keys over equal tokens.
   */
  lookup(c: number, mk: number, parent: ChainKey, tokens: Int32Array, from: number): number {
    const head = this.maps[c].get(mk);
    if (head === undefined) return NONE;
    if (this.parentHi[head] !== parent.hi || this.parentLo[head] !== parent.lo) return NONE;
    const base = head * this.B;
    for (let i = 0; i < this.B; i++) if (this.tokens[base + i] !== tokens[from + i]) return NONE;
    return head;
  }

  /** Page ids on the free stack (tests and debugging; allocates). */
  freePageIds(): Int32Array {
    return this.freeStack.slice(0, this.freeTop);
  }

  /** Page ids of the cached blocks, least recently cached first (tests and debugging). */
  cachedPageIds(): number[] {
    const out: number[] = [];
    if (!this.caching) return out;
    for (let h = this.lruNext[this.numPages]; h !== this.numPages; h = this.lruNext[h]) {
      for (let p = h; p !== NONE; p = this.next[p]) out.push(p);
    }
    return out;
  }

  private insert(c: number, head: number): boolean {
    const map = this.maps[c];
    if (map.has(this.key[head])) return false;
    map.set(this.key[head], head);
    this.inMap[head] = 1;
    return true;
  }

  private evict(head: number): void {
    const c = this.headClass[head];
    this.lruUnlink(head);
    this.cached -= this.ppb[c];
    this.cachedBlocks[c]--;
    this.evictedBlocks[c]++;
    this.freeBlock(head);
  }

  /** Returns the block's pages to the stack, in slot order, and forgets its content. */
  private freeBlock(head: number): void {
    const c = this.headClass[head];
    if (this.caching && this.key[head] !== NONE) {
      if (this.inMap[head] === 1) this.maps[c].delete(this.key[head]);
      this.inMap[head] = 0;
      this.key[head] = NONE;
    }
    this.headClass[head] = NONE;
    for (let p = head; p !== NONE; ) {
      const n = this.next[p];
      this.next[p] = NONE;
      this.freeStack[this.freeTop++] = p;
      p = n;
    }
  }

  private lruPush(head: number): void {
    const s = this.numPages;
    const last = this.lruPrev[s];
    this.lruNext[last] = head;
    this.lruPrev[head] = last;
    this.lruNext[head] = s;
    this.lruPrev[s] = head;
  }

  private lruUnlink(head: number): void {
    const p = this.lruPrev[head];
    const n = this.lruNext[head];
    this.lruNext[p] = n;
    this.lruPrev[n] = p;
  }
}
