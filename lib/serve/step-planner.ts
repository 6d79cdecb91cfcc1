/**
 * Builds one step: which requests run and how many tokens each feeds, under the token budget
 * and the exact KV page count, preempting and admitting as it goes.
 *
 * Policies (vLLM v1's, with the oldest request protected):
 * - Running requests are visited in arrival order. A decode feeds 1 token; a prefill (or a
 *   recomputation) feeds up to `prefillChunk` tokens, from the budget left after every
 *   decode not yet visited, so long prompts never push decodes out of a step. The first
 *   request visited always gets at least one token, so the oldest always progresses.
 * - Memory is the block manager's own: each entry's tokens are reserved as it is planned
 *   (for this step only, not the worst case of the whole generation), so the step cannot
 *   meet a full pool. When a request's tokens do not fit, the newest running request is
 *   preempted (blocks released, recomputed later) until they do; a request with no newer
 *   one to preempt takes a shorter chunk, or is itself preempted, or, when it is the only
 *   one running, fails: it can never fit.
 * - Waiting requests are admitted in arrival order only (no overtaking: FCFS, so a large
 *   request at the head is never starved by small ones), only in steps where no running
 *   request went short of pages, only when every prompt running and the new one can finish
 *   their prefill in the pages available (otherwise admitting just moves work into
 *   recomputation), and leaving a small watermark free for the running decodes.
 */
import type { StepEntry } from '../engine/engine.js';
import type { KvPool } from './kv-pool.js';
import { insertByArrival, removeFrom, type ScheduledRequest } from './sequence.js';
import type { ResolvedLimits } from './types.js';

export interface StepPlan {
  readonly entries: StepEntry[];
  /** reqs[i] feeds entries[i]. */
  readonly reqs: ScheduledRequest[];
  /** Tokens of prefill and recomputation entries (decodes are the rest). */
  prefillTokens: number;
}

export interface PlannerHooks {
  onAdmit(r: ScheduledRequest): void;
  onPreempt(r: ScheduledRequest): void;
  /** Ends a request that can never run (the scheduler removes it and releases its blocks). */
  fail(r: ScheduledRequest, error: Error): void;
}

export class StepPlanner {
  constructor(
    private readonly pool: KvPool,
    private readonly limits: ResolvedLimits,
    /** Both in arrival order. */
    private readonly running: ScheduledRequest[],
    private readonly waiting: ScheduledRequest[],
    private readonly hooks: PlannerHooks,
  ) {}

  plan(): StepPlan {
    const plan: StepPlan = { entries: [], reqs: [], prefillTokens: 0 };
    const budget = { left: this.limits.maxBatchTokens };
    const short = this.planRunning(plan, budget);
    if (!short) this.admit(plan, budget);
    return plan;
  }

  /** Schedules the running requests; true when one of them went short of pages. */
  private planRunning(plan: StepPlan, budget: { left: number }): boolean {
    const running = this.running;
    let short = false;
    let decodesLeft = 0;
    for (const r of running) if (r.remaining === 1) decodesLeft++;
    for (let i = 0; i < running.length; i++) {
      const r = running[i];
      const decode = r.remaining === 1;
      if (decode) decodesLeft--;
      if (budget.left < 1) break;
      let n = decode ? 1 : Math.min(r.remaining, this.limits.prefillChunk, budget.left - decodesLeft);
      if (n < 1) {
        if (plan.entries.length > 0) continue; // waits for a step with budget to spare
        n = 1;
      }
      while (!this.pool.tryReserve(r.seq, n)) {
        short = true;
        if (running.length - 1 > i) {
          const victim = running[running.length - 1];
          if (victim.remaining === 1) decodesLeft--;
          this.preempt(victim);
        } else {
          n = this.pool.largestFitting(r.seq, n, this.pool.available());
          if (n === 0) break;
        }
      }
      if (n === 0) {
        // Nothing newer is left to preempt. Beside older requests, r waits its turn;
        // alone, its next token needs more than the whole pool: it can never run.
        if (running.length > 1) this.preempt(r);
        else this.hooks.fail(r, this.tooLarge(r, r.computed, this.pool.pagesNeeded(r.seq, 1)));
        i--;
        continue;
      }
      this.add(plan, r, n, decode);
      budget.left -= n;
    }
    return short;
  }

  /** Admits waiting requests from the head while the running limit, the budget and the pages allow. */
  private admit(plan: StepPlan, budget: { left: number }): void {
    while (this.waiting.length > 0 && this.running.length < this.limits.maxRunningSequences && budget.left > 0) {
      const r = this.waiting[0];
      // Beside running requests the head waits for pages (nobody overtakes it); alone it
      // takes a shorter chunk, and fails only if not even one token fits an empty pool.
      const alone = this.running.length === 0;
      const keep = alone ? 0 : this.limits.admissionWatermarkPages;
      if (!alone && this.prefillPagesAhead() + this.pool.pagesToFinish(undefined, r.tokens.length, this.limits.prefillChunk) > this.pool.available() - keep) {
        return;
      }
      const maxN = Math.min(this.limits.prefillChunk, budget.left);
      const s = this.pool.tryStart(r.tokens, maxN, keep, alone);
      if (s.kind === 'wait') return;
      if (s.kind === 'never') {
        this.hooks.fail(r, this.tooLarge(r, s.cached, s.need1));
        continue;
      }
      this.waiting.shift();
      r.seq = s.seq;
      r.computed = s.cached;
      r.state = 'running';
      insertByArrival(this.running, r);
      this.hooks.onAdmit(r);
      this.add(plan, r, s.n, false);
      budget.left -= s.n;
    }
  }

  /** Pages the running requests still in their prompt need to finish it. */
  private prefillPagesAhead(): number {
    let pages = 0;
    for (const r of this.running) {
      if (r.remaining > 1) pages += this.pool.pagesToFinish(r.seq, r.tokens.length, this.limits.prefillChunk);
    }
    return pages;
  }

  /** Preemption by recomputation: the blocks go back now; the tokens so far become its prompt. */
  private preempt(r: ScheduledRequest): void {
    removeFrom(this.running, r);
    this.pool.release(r.seq);
    r.seq = -1;
    r.computed = 0;
    r.state = 'waiting';
    r.preemptions++;
    insertByArrival(this.waiting, r);
    this.hooks.onPreempt(r);
  }

  private add(plan: StepPlan, r: ScheduledRequest, n: number, decode: boolean): void {
    plan.entries.push({ seq: r.seq, tokens: r.tokens.slice(r.computed, r.computed + n) });
    plan.reqs.push(r);
    if (!decode) plan.prefillTokens += n;
  }

  private tooLarge(r: ScheduledRequest, position: number, need: number): Error {
    const total = this.pool.blocks.numPages;
    return new RangeError(
      `scheduler: request ${r.id} cannot fit in the KV pool even alone: its next token at position ${position} ` +
        `(${r.tokens.length} tokens so far) needs ${need} pages but the pool holds ${total}`,
    );
  }
}
