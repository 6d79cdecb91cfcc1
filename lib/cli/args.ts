/** Small helpers over node:util parseArgs that turn bad values into one-line errors. */
import type { KvRank } from '../plan/types.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function intOption(value: string | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

export function listOption(value: string | undefined, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

/** --kv-rank: 'R' (keys and values) or 'k=R1,v=R2' (either order). */
export function kvRankOption(text: string, headDim: number): KvRank {
  const one = /^\d+$/.test(text.trim()) ? Number(text) : undefined;
  const m = /^\s*k\s*=\s*(\d+)\s*,\s*v\s*=\s*(\d+)\s*$/.exec(text) ?? /^\s*v\s*=\s*(\d+)\s*,\s*k\s*=\s*(\d+)\s*$/.exec(text);
  const swapped = m !== null && /^\s*v/.test(text);
  const r = one !== undefined ? { k: one, v: one } : m ? { k: Number(m[swapped ? 2 : 1]), v: Number(m[swapped ? 1 : 2]) } : undefined;
  if (!r) throw new UsageError(`--kv-rank must be R or k=R1,v=R2 (e.g. 32 or k=32,v=48), got '${text}'`);
  for (const [what, x] of [['k', r.k], ['v', r.v]] as const) {
    if (x < 1 || x > headDim) throw new UsageError(`--kv-rank: ${what} = ${x} must be in [1, head width ${headDim}]`);
  }
  return r;
}
