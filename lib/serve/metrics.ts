/**
 * Scheduler metrics in a shape that maps straight onto Prometheus: counters are running
 * totals, histograms keep cumulative bucket counts with their sum and count, gauges are read
 * when the snapshot is taken. Rates are over a sliding window of one-second buckets, so the
 * hot path only adds to a number.
 */
import type { EndReason } from './types.js';

/** Upper bounds (seconds) of the latency histograms; +Inf is implied by `count`. */
export const LATENCY_BUCKETS_S: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Finer bounds for the time between tokens. */
export const ITL_BUCKETS_S: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5];

export interface HistogramSnapshot {
  /** Upper bounds in seconds. */
  readonly buckets: readonly number[];
  /** Observations <= buckets[i] (cumulative, as Prometheus `le` buckets). */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export class Histogram {
  private readonly perBucket: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(readonly buckets: readonly number[] = LATENCY_BUCKETS_S) {
    this.perBucket = new Float64Array(buckets.length);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (v <= this.buckets[i]) {
        this.perBucket[i]++;
        return;
      }
    }
  }

  snapshot(): HistogramSnapshot {
    const counts: number[] = [];
    let acc = 0;
    for (const c of this.perBucket) counts.push((acc += c));
    return { buckets: this.buckets, counts, sum: this.sum, count: this.count };
  }
}

/** Events per second over the last `windowS` seconds, in one-second buckets. */
export class RateWindow {
  private readonly counts: Float64Array;
  private readonly stamps: Float64Array;

  constructor(
    readonly windowS: number,
    private readonly startedAt: number,
  ) {
    this.counts = new Float64Array(windowS);
    this.stamps = new Float64Array(windowS).fill(-1);
  }

  add(n: number, nowMs: number): void {
    const b = Math.floor(nowMs / 1000);
    const i = b % this.windowS;
    if (this.stamps[i] !== b) {
      this.stamps[i] = b;
      this.counts[i] = 0;
    }
    this.counts[i] += n;
  }

  /** Rate over the window (over the time since the start, while that is shorter). */
  rate(nowMs: number): number {
    const b = Math.floor(nowMs / 1000);
    let sum = 0;
    for (let i = 0; i < this.windowS; i++) if (this.stamps[i] > b - this.windowS) sum += this.counts[i];
    const spanMs = Math.min(this.windowS * 1000, nowMs - this.startedAt);
    return spanMs > 0 ? (sum * 1000) / spanMs : 0;
  }
}

export interface ClassUsage {
  readonly classId: number;
  /** 0 for a global class, else the sliding window in tokens. */
  readonly window: number;
  readonly pagesPerBlock: number;
  /** Blocks the class holds across live sequences, and the pages they take. */
  readonly blocks: number;
  readonly pages: number;
}

export interface SchedulerMetrics {
  /** Requests holding KV and taking part in steps / waiting for admission (preempted ones included). */
  readonly running: number;
  readonly waiting: number;
  readonly pages: {
    readonly total: number;
    /** Held by live sequences and the prefix cache. */
    readonly used: number;
    readonly free: number;
    /** Held only by the prefix cache (evictable). */
    readonly cached: number;
  };
  readonly classes: readonly ClassUsage[];
  /** Over the last `windowSeconds`: prompt tokens computed (recomputation included) and tokens generated, per second. */
  readonly tokensPerSecond: { readonly prompt: number; readonly generation: number; readonly windowSeconds: number };
  /** Counters since the scheduler started. */
  readonly totals: {
    readonly requests: number;
    readonly promptTokens: number;
    readonly generationTokens: number;
    /** Prompt tokens of the total that were recomputations after preemption. */
    readonly recomputedTokens: number;
    readonly steps: number;
    readonly preemptions: number;
  };
  readonly finished: Readonly<Record<EndReason, number>>;
  /** Prefix caching: prompt tokens of admitted sequences, and those found cached (not computed). */
  readonly prefixCache: { readonly enabled: boolean; readonly queries: number; readonly queryTokens: number; readonly hitTokens: number };
  /** Arrival to first admission (waiting in the queue), seconds. */
  readonly queueTime: HistogramSnapshot;
  /** Arrival to first generated token, seconds. */
  readonly timeToFirstToken: HistogramSnapshot;
  /** Between consecutive tokens of a request (recomputation after a preemption included), seconds. */
  readonly interTokenLatency: HistogramSnapshot;
  /** Arrival to end, seconds, for requests that finished with stop or length. */
  readonly requestLatency: HistogramSnapshot;
}

/** The counters the scheduler updates as it runs (gauges are added by the scheduler's snapshot). */
export class MetricsRecorder {
  readonly prompt: RateWindow;
  readonly generation: RateWindow;
  readonly queue = new Histogram();
  readonly ttft = new Histogram();
  readonly itl = new Histogram(ITL_BUCKETS_S);
  readonly latency = new Histogram();
  requests = 0;
  promptTokens = 0;
  generationTokens = 0;
  recomputedTokens = 0;
  steps = 0;
  preemptions = 0;
  readonly finished: Record<EndReason, number> = { stop: 0, length: 0, abort: 0, error: 0 };

  constructor(
    readonly windowS = 10,
    startedAt = performance.now(),
  ) {
    this.prompt = new RateWindow(windowS, startedAt);
    this.generation = new RateWindow(windowS, startedAt);
  }

  step(prefillTokens: number, recomputed: number, generated: number, now: number): void {
    this.steps++;
    this.promptTokens += prefillTokens;
    this.recomputedTokens += recomputed;
    this.generationTokens += generated;
    if (prefillTokens > 0) this.prompt.add(prefillTokens, now);
    if (generated > 0) this.generation.add(generated, now);
  }

  ended(reason: EndReason, arrivedAt: number, now: number): void {
    this.finished[reason]++;
    if (reason === 'stop' || reason === 'length') this.latency.observe((now - arrivedAt) / 1000);
  }
}
