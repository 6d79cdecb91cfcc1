/**
 * The scheduler's contracts: what it needs from an engine, what it needs from a request
 * (a "client": it turns logits into tokens and receives the end), and its limits.
 *
 * The scheduler owns the KV sequences and the token stream fed to the engine; a client only
 * decides what each logits row means (sampling, detokenizing, stop strings), so a request
 * preempted and recomputed continues with the same client state and emits nothing twice.
 */
import type { StepEntry } from '../engine/engine.js';
import type { KvBlockManager } from '../kv/block-manager.js';
import type { DeviceSampling, Reduced } from '../sampling/index.js';

/** The part of Engine the scheduler uses (tests give a simulated one with a real block manager). */
export interface SchedulerEngine {
  readonly blocks: KvBlockManager;
  /** Reserves (all or nothing), runs the batch, commits; logits of each entry's last token. */
  step(entries: readonly StepEntry[]): Promise<Float32Array[]>;
  /**
   * As step, but samples each entry's last row where the logits are, by the entry's policy
   * (undefined: a row nobody reads); only tokens and requested logprobs come back. Optional:
   * without it every step samples on the host.
   */
  stepSampled?(entries: readonly StepEntry[], sampling: readonly (DeviceSampling | undefined)[]): Promise<Reduced[]>;
}

/** Why a request ended: its client said so (stop, length), it was cancelled, or it failed. */
export type EndReason = 'stop' | 'length' | 'abort' | 'error';

export type RequestEnd =
  | { readonly reason: 'stop' | 'length' }
  | { readonly reason: 'abort' }
  | { readonly reason: 'error'; readonly error: unknown };

export interface NextToken {
  readonly token: number;
  /** Set when this token is the request's last. */
  readonly finish?: 'stop' | 'length';
}

export interface SchedulerClient {
  /** The prompt's token ids (at least one). */
  readonly promptIds: readonly number[];
  /**
   * The token after the request's last position, from that position's logits row (vocab
   * fp32; the row is only valid during the call). Called once per generated token, in order,
   * whatever preemptions happen in between. Throwing ends the request with the error.
   */
  nextToken(row: Float32Array, now: number): NextToken;
  /**
   * Device sampling (optional; all three or none): whether the next token's policy can run on
   * the device (Backend::sample covers it); the policy for this step (called once per token,
   * only for a step that runs: it draws the step's random number); and the token sampled by it,
   * which the client takes as nextToken would (throwing ends the request with the error).
   */
  canSampleOnDevice?(): boolean;
  deviceSampling?(): DeviceSampling;
  acceptSampled?(sampled: Reduced, now: number): NextToken;
  /** The request was admitted for the first time (its first step is being built). */
  onStart?(now: number): void;
  /** The request left the scheduler; its KV blocks are already back in the pool. Called once. */
  onEnd(end: RequestEnd, now: number): void;
}

/** What submit() returns. */
export interface RequestHandle {
  /** Arrival order (older requests have smaller ids and are protected from preemption). */
  readonly id: number;
  readonly state: 'waiting' | 'running' | 'ended';
  /**
   * Ends the request with reason 'abort'. Its KV blocks go back to the pool at once, or right
   * after the step now running when that step is computing it. No-op once ended.
   */
  cancel(): void;
}

export interface SchedulerLimits {
  /**
   * Sample on the device (Engine.stepSampled) when the engine can and every request that takes
   * a token from the step can; else download the logits and sample on the host. True unless
   * given. The two paths give the same tokens for the same seeds.
   */
  readonly deviceSampling?: boolean;
  /** Most tokens one step runs: every decode (one token each) plus prefill chunks. */
  readonly maxBatchTokens?: number;
  /** Most sequences holding KV and taking part in steps at once. */
  readonly maxRunningSequences?: number;
  /** Most prompt (or recomputation) tokens of one request in one step. */
  readonly prefillChunk?: number;
  /**
   * Pages kept free when admitting beside running requests, so that their next decode blocks
   * do not immediately preempt the newcomer (vLLM's watermark). 1% of the pool unless given.
   */
  readonly admissionWatermarkPages?: number;
}

export const DEFAULT_MAX_BATCH_TOKENS = 2048;
export const DEFAULT_MAX_RUNNING_SEQUENCES = 256;
export const DEFAULT_SCHEDULER_PREFILL_CHUNK = 512;

export interface ResolvedLimits {
  readonly deviceSampling: boolean;
  readonly maxBatchTokens: number;
  readonly maxRunningSequences: number;
  readonly prefillChunk: number;
  readonly admissionWatermarkPages: number;
}

export function resolveLimits(l: SchedulerLimits, numPages: number): ResolvedLimits {
  const int = (name: string, v: number | undefined, dflt: number, min: number): number => {
    const x = v ?? dflt;
    if (!Number.isSafeInteger(x) || x < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${String(x)}`);
    return x;
  };
  if (l.deviceSampling !== undefined && typeof l.deviceSampling !== 'boolean') {
    throw new RangeError(`deviceSampling must be a boolean, got ${String(l.deviceSampling)}`);
  }
  return {
    deviceSampling: l.deviceSampling ?? true,
    maxBatchTokens: int('maxBatchTokens', l.maxBatchTokens, DEFAULT_MAX_BATCH_TOKENS, 1),
    maxRunningSequences: int('maxRunningSequences', l.maxRunningSequences, DEFAULT_MAX_RUNNING_SEQUENCES, 1),
    prefillChunk: int('prefillChunk', l.prefillChunk, DEFAULT_SCHEDULER_PREFILL_CHUNK, 1),
    admissionWatermarkPages: int('admissionWatermarkPages', l.admissionWatermarkPages, Math.ceil(numPages / 100), 0),
  };
}
