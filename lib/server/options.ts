/** Server options, their defaults, and the model's context length from its config.json. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Model } from '../api/index.js';

export interface ServerOptions {
  readonly model: Model;
  /** The name clients pass as `model` (default: the model directory as given, like vLLM). */
  readonly servedModelName?: string;
  /** When set, /v1/* needs `Authorization: Bearer <key>` (/health and /metrics stay open). */
  readonly apiKey?: string;
  /** Most accepted generations waiting for the engine at once; more are refused with 429 (default 512). */
  readonly maxQueue?: number;
  /** Most prompt + completion tokens of a request (default: config.json max_position_embeddings, else 4096). */
  readonly maxModelLen?: number;
  /** Largest max_tokens accepted (default: maxModelLen). */
  readonly maxTokensLimit?: number;
  /** Largest request body in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** close() lets generations in flight run this long before aborting them (default 10 s). */
  readonly shutdownGraceMs?: number;
  /** close() disposes the model (default true). */
  readonly disposeModel?: boolean;
  /** Where unexpected errors and lifecycle lines go (default: console.error). */
  readonly log?: (line: string) => void;
}

export interface ResolvedServerOptions {
  readonly servedModelName: string;
  readonly apiKey: string | undefined;
  readonly maxQueue: number;
  readonly maxModelLen: number;
  readonly maxTokensLimit: number;
  readonly maxBodyBytes: number;
  readonly shutdownGraceMs: number;
  readonly disposeModel: boolean;
  readonly log: (line: string) => void;
}

export const DEFAULT_MAX_QUEUE = 512;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
const FALLBACK_MAX_MODEL_LEN = 4096;

/** config.json's max_position_embeddings (or its text_config's, for multimodal wrappers). */
export async function configMaxPositions(dir: string | undefined): Promise<number | undefined> {
  if (dir === undefined) return undefined;
  try {
    const c = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const text = (c.text_config ?? {}) as Record<string, unknown>;
    const v = c.max_position_embeddings ?? text.max_position_embeddings;
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}

function positiveInt(name: string, v: number | undefined, fallback: number, min = 1): number {
  const x = v ?? fallback;
  if (!Number.isSafeInteger(x) || x < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${String(x)}`);
  return x;
}

export async function resolveServerOptions(o: ServerOptions): Promise<ResolvedServerOptions> {
  const maxModelLen = positiveInt('maxModelLen', o.maxModelLen, (await configMaxPositions(o.model.dir)) ?? FALLBACK_MAX_MODEL_LEN, 2);
  const maxTokensLimit = positiveInt('maxTokensLimit', o.maxTokensLimit, maxModelLen);
  if (o.apiKey !== undefined && o.apiKey.length === 0) throw new RangeError('apiKey must not be empty');
  return {
    servedModelName: o.servedModelName ?? o.model.dir ?? 'mixattn',
    apiKey: o.apiKey,
    maxQueue: positiveInt('maxQueue', o.maxQueue, DEFAULT_MAX_QUEUE),
    maxModelLen,
    maxTokensLimit,
    maxBodyBytes: positiveInt('maxBodyBytes', o.maxBodyBytes, DEFAULT_MAX_BODY_BYTES),
    shutdownGraceMs: positiveInt('shutdownGraceMs', o.shutdownGraceMs, DEFAULT_SHUTDOWN_GRACE_MS, 0),
    disposeModel: o.disposeModel ?? true,
    log: o.log ?? ((line) => console.error(line)),
  };
}
