/** Byte sizes as people write them ('40GiB', '512 MB', '1.5TiB') and back. */

const UNITS: Readonly<Record<string, bigint>> = {
  b: 1n,
  kb: 1000n,
  kib: 1024n,
  mb: 1000n ** 2n,
  mib: 1024n ** 2n,
  gb: 1000n ** 3n,
  gib: 1024n ** 3n,
  tb: 1000n ** 4n,
  tib: 1024n ** 4n,
};

/**
 * Parses a byte size: a non-negative decimal number and an optional unit (B, KB, KiB, MB,
 * MiB, GB, GiB, TB, TiB; case-insensitive; KB = 1000 B, KiB = 1024 B). A bare number is
 * bytes. Fractions are exact and rounded down to whole bytes.
 */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+)(?:\.(\d+))?\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[(m[3] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new RangeError(
      `invalid byte size ${JSON.stringify(text)}: expected a number with an optional unit ` +
        '(B, KB, KiB, MB, MiB, GB, GiB, TB, TiB), e.g. "40GiB"',
    );
  }
  const frac = m[2] ?? '';
  const scale = 10n ** BigInt(frac.length);
  const bytes = (BigInt(m[1] + frac) * unit) / scale; // exact, rounds down
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`byte size ${JSON.stringify(text)} is too large`);
  }
  return Number(bytes);
}

/** Formats bytes with a binary unit, e.g. 42949672960 → '40 GiB', 1536 → '1.5 KiB'. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : Number(v.toFixed(2))} ${units[u]}`;
}
