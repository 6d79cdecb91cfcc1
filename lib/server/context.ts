/** What the endpoint handlers share with the server: the model, limits, metrics, admission. */
import type { Model } from '../api/index.js';
import type { ServerMetrics } from './metrics.js';
import type { TokenTexts } from './logprobs.js';

export interface ServerLimits {
  /** Prompt + completion tokens of one request. */
  readonly maxModelLen: number;
  /** Largest max_tokens accepted. */
  readonly maxTokensLimit: number;
}

/** Why a generation was stopped before its end. */
export type AbortCause = 'client' | 'shutdown';

/** A generation the server tracks from admission to its end (for draining and aborting). */
export interface Ticket {
  readonly signal: AbortSignal;
  /** Set once the generation was aborted, with why. */
  readonly cause: AbortCause | undefined;
  abort(cause: AbortCause): void;
  /** The generation ended (normally or not): it leaves the server's in-flight set. */
  release(): void;
}

export interface HandlerContext {
  readonly model: Model;
  readonly servedName: string;
  readonly limits: ServerLimits;
  readonly metrics: ServerMetrics;
  readonly texts: TokenTexts;
  /** Admits one generation or throws 429 (queue full) / 503 (shutting down). */
  admit(): Ticket;
  /** Server-side log of unexpected errors (never sent to clients). */
  logError(requestId: string, e: unknown): void;
}
