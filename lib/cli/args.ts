/** Small helpers over node:util parseArgs that turn bad values into one-line errors. */
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
