/**
 * The continuous-batching scheduler of one engine. Requests join and leave the running batch
 * at every step; each step carries every running decode plus prefill chunks under a token
 * budget (step-planner.ts has the policies: exact KV admission, preemption by recomputation
 * of the newest request, FCFS). The loop runs while there is work and stops when idle.
 *
 * Requests leave between steps: their blocks go back to the pool before the client hears of
 * the end. A cancel() of a request that is not in the step now running ends it at once.
 */
import type { Reduced } from '../sampling/index.js';
import { KvPool } from './kv-pool.js';
import { MetricsRecorder, type ClassUsage, type SchedulerMetrics } from './metrics.js';
import { removeFrom, ScheduledRequest } from './sequence.js';
import { StepPlanner, type StepPlan } from './step-planner.js';
import {
  resolveLimits,
  type NextToken,
  type RequestEnd,
  type RequestHandle,
  type ResolvedLimits,
  type SchedulerClient,
  type SchedulerEngine,
  type SchedulerLimits,
} from './types.js';

export interface SchedulerOptions extends SchedulerLimits {
  /** Seconds of the sliding window behind the tokens/s metrics (10 unless given). */
  readonly rateWindowSeconds?: number;
  /** Called after every step with its plan (tests check budgets and block invariants here). */
  readonly onStep?: (info: StepInfo) => void;
}

export interface StepInfo {
  /** The entries that ran (sequence ids and tokens) and the requests they belong to. */
  readonly plan: StepPlan;
  readonly requestIds: readonly number[];
  /** Whether the step sampled on the device (Engine.stepSampled) rather than downloading logits. */
  readonly sampledOnDevice: boolean;
}

export class Scheduler {
  readonly limits: ResolvedLimits;
  private readonly pool: KvPool;
  private readonly running: ScheduledRequest[] = [];
  private readonly waiting: ScheduledRequest[] = [];
  private readonly planner: StepPlanner;
  private readonly recorder: MetricsRecorder;
  private nextId = 0;
  private looping = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly engine: SchedulerEngine,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.pool = new KvPool(engine.blocks);
    this.limits = resolveLimits(opts, engine.blocks.numPages);
    this.recorder = new MetricsRecorder(opts.rateWindowSeconds ?? 10);
    this.planner = new StepPlanner(this.pool, this.limits, this.running, this.waiting, {
      onAdmit: (r) => {
        if (r.started) return;
        r.started = true;
        const now = performance.now();
        this.recorder.queue.observe((now - r.arrivedAt) / 1000);
        r.client.onStart?.(now);
      },
      onPreempt: () => this.recorder.preemptions++,
      fail: (r, e) => this.end(r, { reason: 'error', error: e }),
    });
  }

  /** Requests running (holding KV) and waiting. */
  get size(): number {
    return this.running.length + this.waiting.length;
  }

  /** Queues a request at the back; it joins a step as soon as budget and pages allow. */
  submit(client: SchedulerClient): RequestHandle {
    if (client.promptIds.length === 0) throw new RangeError('scheduler: the prompt is empty (no tokens)');
    const r = new ScheduledRequest(this.nextId++, client, performance.now(), (x) => this.cancel(x));
    this.waiting.push(r); // ids grow, so the back keeps arrival order
    this.recorder.requests++;
    if (!this.looping) {
      this.looping = true;
      this.loop = this.run();
      this.loop.catch(() => {}); // every request has heard of the error; idle() still rejects with it
    }
    return r;
  }

  /** Cancels every request (as each one's cancel()). */
  cancelAll(): void {
    for (const r of [...this.running, ...this.waiting]) this.cancel(r);
  }

  /** Resolves when nothing is running or waiting. */
  async idle(): Promise<void> {
    while (this.looping) await this.loop;
  }

  metrics(now = performance.now()): SchedulerMetrics {
    const blocks = this.engine.blocks;
    const classes: ClassUsage[] = blocks.layout.classes.map((c) => {
      const n = blocks.blocksInUse(c.id);
      return { classId: c.id, window: c.window, pagesPerBlock: c.pagesPerBlock, blocks: n, pages: n * c.pagesPerBlock };
    });
    const m = this.recorder;
    const pc = blocks.prefixCacheStats();
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      pages: { total: blocks.numPages, used: blocks.usedPages, free: blocks.freePages, cached: this.pool.cachedPages() },
      classes,
      tokensPerSecond: { prompt: m.prompt.rate(now), generation: m.generation.rate(now), windowSeconds: m.windowS },
      totals: {
        requests: m.requests,
        promptTokens: m.promptTokens,
        generationTokens: m.generationTokens,
        recomputedTokens: m.recomputedTokens,
        steps: m.steps,
        preemptions: m.preemptions,
      },
      finished: { ...m.finished },
      prefixCache: { enabled: pc.enabled, queries: pc.queries, queryTokens: pc.queryTokens, hitTokens: pc.hitTokens },
      queueTime: m.queue.snapshot(),
      timeToFirstToken: m.ttft.snapshot(),
      interTokenLatency: m.itl.snapshot(),
      requestLatency: m.latency.snapshot(),
    };
  }

  private cancel(r: ScheduledRequest): void {
    if (r.state === 'ended') return;
    // The step running now reads its pages: they go back right after it.
    if (r.inStep) r.cancelPending = true;
    else this.end(r, { reason: 'abort' });
  }

  private async run(): Promise<void> {
    try {
      await null; // requests submitted in the same tick join the first step together
      while (this.size > 0) await this.step();
    } catch (e) {
      // A bug (or a throwing onStep hook): end everything rather than leave streams hanging.
      for (const r of [...this.running, ...this.waiting]) {
        r.inStep = false;
        this.end(r, { reason: 'error', error: e });
      }
      throw e;
    } finally {
      this.looping = false;
    }
  }

  private async step(): Promise<void> {
    const plan = this.planner.plan();
    if (plan.entries.length === 0) return; // requests were failed: the queues changed
    for (const r of plan.reqs) r.inStep = true;
    // The entries that reach their request's last known token: a token is sampled from them.
    const sampling = plan.reqs.map((r, j) => r.computed + plan.entries[j].tokens.length >= r.tokens.length);
    const onDevice = this.samplesOnDevice(plan.reqs, sampling);
    let logits: Float32Array[] | undefined;
    let sampled: Reduced[] | undefined;
    try {
      if (onDevice) {
        const policies = plan.reqs.map((r, j) => (sampling[j] ? r.client.deviceSampling!() : undefined));
        sampled = await this.engine.stepSampled!(plan.entries, policies);
      } else {
        logits = await this.engine.step(plan.entries);
      }
    } catch (e) {
      // Nothing was committed (or the backend failed): the step's requests end with the error.
      for (const r of plan.reqs) r.inStep = false;
      for (const r of plan.reqs) this.end(r, { reason: 'error', error: e });
      return;
    } finally {
      this.opts.onStep?.({ plan, requestIds: plan.reqs.map((r) => r.id), sampledOnDevice: onDevice });
    }
    const now = performance.now();
    for (const r of plan.reqs) r.inStep = false;
    let recomputed = 0;
    let generated = 0;
    for (let j = 0; j < plan.reqs.length; j++) {
      const r = plan.reqs[j];
      if (r.state !== 'running') continue;
      const n = plan.entries[j].tokens.length;
      recomputed += Math.max(0, Math.min(r.computed + n, r.highWater) - r.computed);
      r.computed += n;
      r.highWater = Math.max(r.highWater, r.computed);
      if (r.cancelPending) {
        this.end(r, { reason: 'abort' }, now);
        continue;
      }
      if (r.computed < r.tokens.length) continue; // a prefill chunk short of the end: no token yet
      const take = sampled ? () => r.client.acceptSampled!(sampled[j], now) : () => r.client.nextToken(logits![j], now);
      if (this.sample(r, take, now)) generated++;
    }
    this.recorder.step(plan.prefillTokens, recomputed, generated, now);
  }

  /**
   * Whether this step samples on the device: the option is on, the engine can, and so can every
   * request that takes a token from it (a step of prefill chunks alone qualifies: its logits
   * are never downloaded).
   */
  private samplesOnDevice(reqs: readonly ScheduledRequest[], sampling: readonly boolean[]): boolean {
    if (!this.limits.deviceSampling || !this.engine.stepSampled) return false;
    return reqs.every((r, j) => {
      if (!sampling[j]) return true;
      const c = r.client;
      return c.canSampleOnDevice !== undefined && c.deviceSampling !== undefined && c.acceptSampled !== undefined && c.canSampleOnDevice();
    });
  }

  /** Takes the client's next token; false when the client failed. */
  private sample(r: ScheduledRequest, take: () => NextToken, now: number): boolean {
    let next;
    try {
      next = take();
    } catch (e) {
      this.end(r, { reason: 'error', error: e }, now);
      return false;
    }
    r.tokens.push(next.token);
    if (r.lastTokenAt < 0) this.recorder.ttft.observe((now - r.arrivedAt) / 1000);
    else this.recorder.itl.observe((now - r.lastTokenAt) / 1000);
    r.lastTokenAt = now;
    if (next.finish) this.end(r, { reason: next.finish }, now);
    return true;
  }

  /** Takes r out of the scheduler: blocks back to the pool first, then the client hears. */
  private end(r: ScheduledRequest, end: RequestEnd, now = performance.now()): void {
    if (r.state === 'ended') return;
    if (r.state === 'running') {
      removeFrom(this.running, r);
      this.pool.release(r.seq);
      r.seq = -1;
    } else {
      removeFrom(this.waiting, r);
    }
    r.state = 'ended';
    this.recorder.ended(end.reason, r.arrivedAt, now);
    try {
      r.client.onEnd(end, now);
    } catch {
      // A client's failure in its own end handler must not stop the other requests.
    }
  }
}
