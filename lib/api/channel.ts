/**
 * An async queue between the scheduler (push) and a generate() iterator (next): ends after
 * close(), or with the error given to fail(). Several pending next() calls are served in order.
 */
interface Waiter<T> {
  resolve: (r: IteratorResult<T>) => void;
  reject: (e: unknown) => void;
}

export class Channel<T> {
  private readonly items: T[] = [];
  private readonly waiters: Waiter<T>[] = [];
  private closed = false;
  private error: { e: unknown } | undefined;

  push(item: T): void {
    if (this.closed) return;
    const w = this.waiters.shift();
    if (w) w.resolve({ value: item, done: false });
    else this.items.push(item);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  fail(e: unknown): void {
    if (this.closed) return;
    this.closed = true;
    const [first, ...rest] = this.waiters.splice(0);
    if (first) first.reject(e);
    else this.error = { e };
    for (const w of rest) w.resolve({ value: undefined, done: true });
  }

  /** The next item, or done once closed and drained; rejects once with fail()'s error after the items before it. */
  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.error) {
      const { e } = this.error;
      this.error = undefined;
      return Promise.reject(e);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
