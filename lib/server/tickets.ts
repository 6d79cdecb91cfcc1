/**
 * The generations a server has admitted and not yet seen end: counted for the queue limit,
 * aborted on shutdown, awaited while draining.
 */
import type { AbortCause, Ticket } from './context.js';

export class Tickets {
  private readonly live = new Set<Ticket>();
  private idleWaiters: (() => void)[] = [];

  get size(): number {
    return this.live.size;
  }

  issue(): Ticket {
    const ac = new AbortController();
    let cause: AbortCause | undefined;
    let released = false;
    const ticket: Ticket = {
      signal: ac.signal,
      get cause() {
        return cause;
      },
      abort: (c) => {
        if (cause !== undefined || released) return;
        cause = c;
        ac.abort();
      },
      release: () => {
        if (released) return;
        released = true;
        this.live.delete(ticket);
        if (this.live.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      },
    };
    this.live.add(ticket);
    return ticket;
  }

  abortAll(cause: AbortCause): void {
    for (const t of this.live) t.abort(cause);
  }

  /** Resolves true once no ticket is live, or false after `ms`. */
  idle(ms: number): Promise<boolean> {
    if (this.live.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }
}
