/**
 * The step loop of one model: every generate() in flight shares the engine's steps. Each
 * step carries one decode token for every request past its prompt and the next prefill
 * chunk of the oldest request still in its prompt (chunks start at multiples of the chunk
 * size, so the KV reservation below bounds what the block manager takes).
 *
 * Admission is by worst-case KV: a request waits until its peak pages fit beside the
 * reservations of the running ones, so a step never meets a full pool. Requests leave
 * (finished, aborted, or dropped by their consumer) between steps: their blocks go back to
 * the pool before their final chunk is delivered. The scheduler issue replaces this with
 * preemption and real batching policies.
 */
import type { Engine, StepEntry } from '../engine/engine.js';
import { pagesPerSequence } from '../kv/memory-model.js';
import type { KvLayout } from '../kv/layout.js';
import type { Request } from './request.js';

/** Most pages a sequence holds growing to n tokens (prefill chunks, then one token per step). */
export function reservationPages(layout: KvLayout, n: number, prefillChunk: number): number {
  return Math.max(pagesPerSequence(layout, n, prefillChunk), pagesPerSequence(layout, n, 1));
}

export class StepLoop {
  private readonly waiting: Request[] = [];
  private readonly running: Request[] = [];
  private reserved = 0;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly engine: Engine,
    readonly prefillChunk: number,
  ) {}

  /** Requests waiting or running. */
  get size(): number {
    return this.waiting.length + this.running.length;
  }

  /** Resolves when the loop is idle (nothing waiting or running). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  submit(req: Request): void {
    this.waiting.push(req);
    this.loop ??= this.run().finally(() => (this.loop = undefined));
  }

  private async run(): Promise<void> {
    while (this.size > 0) {
      this.retireCancelled();
      this.admit();
      const batch = this.batch();
      if (batch.entries.length === 0) {
        // Nothing runs and the head cannot be admitted: it can never fit (generate() checks
        // against the whole pool, so this is a guard, not a path).
        const head = this.waiting[0];
        if (head) this.remove(head, () => head.fail(new Error(`generate: the request needs ${head.reservePages} KV pages; the pool has ${this.engine.blocks.numPages}`)));
        continue;
      }
      let logits: Float32Array[];
      try {
        logits = await this.engine.step(batch.entries);
      } catch (e) {
        // The step ran nothing (or failed in the backend): its requests end with the error.
        for (const r of batch.reqs) this.remove(r, () => r.fail(e));
        continue;
      }
      const now = performance.now();
      batch.reqs.forEach((r, j) => {
        if (!r.prefillDone || r.cancelled) return;
        let finished: boolean;
        try {
          finished = r.onLogits(logits[j], now);
        } catch (e) {
          return this.remove(r, () => r.fail(e));
        }
        if (finished) this.remove(r, () => r.retire(performance.now()));
      });
    }
  }

  private retireCancelled(): void {
    for (const r of [...this.waiting, ...this.running]) if (r.cancelled) this.remove(r, () => r.retire(performance.now()));
  }

  /** FIFO admission while the head's reservation fits (the head always fits an empty pool: generate() checked). */
  private admit(): void {
    const total = this.engine.blocks.numPages;
    while (this.waiting.length > 0 && this.reserved + this.waiting[0].reservePages <= total) {
      const r = this.waiting.shift()!;
      this.reserved += r.reservePages;
      r.admitted(this.engine.addSequence(), performance.now());
      this.running.push(r);
    }
  }

  private batch(): { entries: StepEntry[]; reqs: Request[] } {
    const entries: StepEntry[] = [];
    const reqs: Request[] = [];
    let prefilling = false;
    for (const r of this.running) {
      if (r.prefillDone) {
        entries.push({ seq: r.seq, tokens: [r.lastToken] });
      } else if (!prefilling) {
        prefilling = true;
        const end = Math.min(r.promptIds.length, r.prefilled + this.prefillChunk);
        entries.push({ seq: r.seq, tokens: r.promptIds.slice(r.prefilled, end) });
        r.prefilled = end;
      } else continue;
      reqs.push(r);
    }
    return { entries, reqs };
  }

  /** Takes a request out of the loop: its KV blocks and reservation go back first, then `end` runs. */
  private remove(r: Request, end: () => void): void {
    const wi = this.waiting.indexOf(r);
    if (wi >= 0) this.waiting.splice(wi, 1);
    const ri = this.running.indexOf(r);
    if (ri >= 0) {
      this.running.splice(ri, 1);
      this.reserved -= r.reservePages;
      this.engine.releaseSequence(r.seq);
    }
    end();
  }
}
