/** The error a reservation that does not fit throws, and its per-class explanation. */

/** Thrown when the pool cannot cover a reservation; nothing was changed. */
export class KvCacheFullError extends Error {
  /** The sequence whose reservation failed, when there is one. */
  readonly seq?: number;
  /** Pages the reservation would take from the pool (net of the pages it makes available). */
  readonly pagesNeeded?: number;
  /** Pages on the free list. */
  readonly freePages?: number;
  /** Pages of cached prefix blocks, which a reservation may evict (0 without prefix caching). */
  readonly cachedPages?: number;

  constructor(
    message: string,
    info: { seq?: number; pagesNeeded?: number; freePages?: number; cachedPages?: number } = {},
  ) {
    super(message);
    this.name = 'KvCacheFullError';
    this.seq = info.seq;
    this.pagesNeeded = info.pagesNeeded;
    this.freePages = info.freePages;
    this.cachedPages = info.cachedPages;
  }
}

/** "N of M are free", naming the cached pages when there are any. */
export function availableText(free: number, cached: number, numPages: number): string {
  return cached === 0
    ? `${free} of ${numPages} are free`
    : `${free + cached} of ${numPages} are free or cached (${cached} cached)`;
}

/** One class's part of a failed reservation, for the message. */
export interface ClassNeed {
  readonly window: number;
  readonly pagesPerBlock: number;
  readonly takenBlocks: number;
  readonly returnedBlocks: number;
}

export function classNeedText(c: number, n: ClassNeed): string {
  const kind = n.window === 0 ? 'global' : `sliding ${n.window}`;
  return (
    `class ${c} (${kind}, ${n.pagesPerBlock} pages/block): takes ${n.takenBlocks * n.pagesPerBlock} pages, ` +
    `returns ${n.returnedBlocks * n.pagesPerBlock}`
  );
}
