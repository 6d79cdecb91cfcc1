/**
 * A request inside the scheduler: the token stream the KV cache must hold and how much of it
 * is computed. One representation covers prefill, decode and recomputation after preemption:
 * `tokens` is the prompt followed by every generated token, and the next step feeds
 * tokens[computed, ...). A step that reaches tokens.length yields the logits of the last
 * position, from which the next token is sampled and appended. So a decode is simply a
 * request with one token left, and a preempted request (computed back to 0) recomputes its
 * prompt and output as one longer prompt, sampling only once it has caught up.
 */
import type { RequestHandle, SchedulerClient } from './types.js';

export class ScheduledRequest implements RequestHandle {
  /** Prompt then generated tokens; the last one is not computed yet while running. */
  readonly tokens: number[];
  readonly promptLength: number;
  /** Tokens whose K/V are in the cache (the KV sequence's length). */
  computed = 0;
  /** Most tokens ever computed: what a recomputation after preemption repeats. */
  highWater = 0;
  /** KV sequence id while holding blocks, else -1. */
  seq = -1;
  state: 'waiting' | 'running' | 'ended' = 'waiting';
  /** Part of the step running now: its blocks must stay until the step ends. */
  inStep = false;
  /** cancel() came while inStep: it ends right after the step. */
  cancelPending = false;
  started = false;
  /** When the last token was sampled (-1 before the first). */
  lastTokenAt = -1;
  preemptions = 0;

  constructor(
    readonly id: number,
    readonly client: SchedulerClient,
    readonly arrivedAt: number,
    private readonly onCancel: (r: ScheduledRequest) => void,
  ) {
    this.tokens = [...client.promptIds];
    this.promptLength = this.tokens.length;
  }

  get generated(): number {
    return this.tokens.length - this.promptLength;
  }

  /** Tokens not yet in the cache; 1 means the next step is a decode. */
  get remaining(): number {
    return this.tokens.length - this.computed;
  }

  cancel(): void {
    this.onCancel(this);
  }
}

/** Inserts r keeping the list in arrival order (ids ascending); lists are short, splice is fine. */
export function insertByArrival(list: ScheduledRequest[], r: ScheduledRequest): void {
  let i = list.length;
  while (i > 0 && list[i - 1].id > r.id) i--;
  list.splice(i, 0, r);
}

export function removeFrom(list: ScheduledRequest[], r: ScheduledRequest): boolean {
  const i = list.indexOf(r);
  if (i < 0) return false;
  list.splice(i, 1);
  return true;
}
