/**
 * A one-line terminal progress bar for loadEngine's onProgress: bytes loaded of the total and
 * the rate. It draws only when the stream (stderr by default) is a TTY, so piped output and
 * machine-readable modes stay clean, and redraws at most ~10 times a second.
 */
import { formatBytes } from '../kv/bytes.js';

export interface ProgressBarOptions {
  /** Where to draw; process.stderr unless given. */
  readonly stream?: NodeJS.WriteStream;
  /** Text before the bar, e.g. 'loading'. */
  readonly label?: string;
  /** Milliseconds between redraws (100 unless given). */
  readonly intervalMs?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

export type ProgressCallback = (loadedBytes: number, totalBytes: number, tensorName: string) => void;

const WIDTH = 24;

/** The bar's text for a state (no terminal codes), e.g. "loading [######------] 25% 1 GiB / 4 GiB 512 MiB/s". */
export function progressLine(label: string, loaded: number, total: number, elapsedMs: number): string {
  const frac = total > 0 ? Math.min(1, loaded / total) : 1;
  const filled = Math.round(frac * WIDTH);
  const rate = elapsedMs > 0 ? `${formatBytes(Math.round((loaded * 1000) / elapsedMs))}/s` : '';
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${Math.floor(frac * 100)}% ${formatBytes(loaded)} / ${formatBytes(total)} ${rate}`.trimEnd();
}

/** A progress callback drawing on a TTY (a no-op elsewhere); ends its line at 100%. */
export function progressBar(opts: ProgressBarOptions = {}): ProgressCallback {
  const stream = opts.stream ?? process.stderr;
  if (!stream.isTTY) return () => {};
  const now = opts.now ?? Date.now;
  const label = opts.label ?? 'loading';
  const interval = opts.intervalMs ?? 100;
  const start = now();
  let last = -Infinity;
  let finished = false;
  return (loaded, total) => {
    if (finished) return;
    const t = now();
    const done = loaded >= total;
    if (!done && t - last < interval) return;
    last = t;
    const cols = stream.columns > 0 ? stream.columns - 1 : 79;
    stream.write(`\r${progressLine(label, loaded, total, t - start).slice(0, cols)}\x1b[K${done ? '\n' : ''}`);
    finished = done;
  };
}
