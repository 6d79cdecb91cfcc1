/**
 * Drives a scheduler through a workload on the simulated engine: requests arrive at given
 * step numbers and some are cancelled at given steps; after every step the budgets and the
 * block manager's invariants are checked.
 */
import { pagesPerSequence } from '../../lib/kv/memory-model.js';
import type { KvLayout } from '../../lib/kv/layout.js';
import { Scheduler, type SchedulerLimits, type StepInfo } from '../../lib/serve/index.js';
import { checkBlocks, SimClient, SimEngine, SIM_VOCAB } from './sim.js';

export interface SimRequest {
  /** Step number at which it is submitted. */
  readonly arrival: number;
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly stopToken?: number;
  /** Step number at which it is cancelled (if still in flight). */
  readonly cancelAt?: number;
}

export interface DriveResult {
  readonly clients: SimClient[];
  /** Requests that cancel() was called on while in flight. */
  readonly cancelled: Set<number>;
  readonly scheduler: Scheduler;
  readonly engine: SimEngine;
  readonly maxRunning: number;
}

export function promptOf(seed: number, length: number): number[] {
  return Array.from({ length }, (_, i) => (seed * 31 + i * 17 + ((seed >> 3) ^ i)) % SIM_VOCAB);
}

/** Pages a request needs to run alone (token by token is the worst growth for every position). */
export function alonePages(layout: KvLayout, r: SimRequest): number {
  return pagesPerSequence(layout, r.prompt.length + r.maxTokens - 1, 1);
}

export async function drive(engine: SimEngine, limits: SchedulerLimits, reqs: readonly SimRequest[]): Promise<DriveResult> {
  let step = 0;
  let maxRunning = 0;
  const clients = reqs.map((r) => new SimClient(r.prompt, r.maxTokens, r.stopToken));
  const submitted = new Set<number>();
  const cancelled = new Set<number>();
  const submitDue = () =>
    reqs.forEach((r, i) => {
      if (submitted.has(i) || r.arrival > step) return;
      submitted.add(i);
      clients[i].handle = scheduler.submit(clients[i]);
    });
  const cancelDue = (info: StepInfo) =>
    reqs.forEach((r, i) => {
      const h = clients[i].handle;
      if (r.cancelAt !== step || !h || h.state === 'ended') return;
      cancelled.add(i);
      h.cancel();
      // At once, unless the step that just ran computed it (then right after that step).
      // (Read through a widened type: the check above narrowed h.state, and cancel() changes it.)
      const ended = (h.state as string) === 'ended';
      if (!ended && !info.requestIds.includes(h.id)) throw new Error(`request ${i} not ended by cancel()`);
      if (ended) checkBlocks(engine);
    });
  const onStep = (info: StepInfo) => {
    step++;
    const { entries } = info.plan;
    const tokens = entries.reduce((a, e) => a + e.tokens.length, 0);
    if (tokens > scheduler.limits.maxBatchTokens) throw new Error(`step of ${tokens} tokens over maxBatchTokens`);
    if (entries.some((e) => e.tokens.length > scheduler.limits.prefillChunk)) throw new Error('an entry is over prefillChunk');
    const m = scheduler.metrics();
    if (m.running > scheduler.limits.maxRunningSequences) throw new Error('too many running sequences');
    maxRunning = Math.max(maxRunning, m.running);
    checkBlocks(engine);
    submitDue();
    cancelDue(info);
  };
  const scheduler = new Scheduler(engine, { ...limits, onStep });
  submitDue();
  while (submitted.size < reqs.length || scheduler.size > 0) {
    await scheduler.idle();
    if (submitted.size < reqs.length) {
      step = Math.min(...reqs.filter((_, i) => !submitted.has(i)).map((r) => r.arrival));
      submitDue();
    }
  }
  checkBlocks(engine);
  return { clients, cancelled, scheduler, engine, maxRunning };
}
