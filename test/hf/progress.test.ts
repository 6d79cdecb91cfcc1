/** The terminal progress bar: drawn on a TTY only, throttled, ending its line at 100%. */
import { describe, expect, it } from 'vitest';
import { progressBar, progressLine } from '../../lib/hf/progress.js';

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { out: string[] } {
  const out: string[] = [];
  return { isTTY, columns: 100, out, write: (s: string) => (out.push(s), true) } as unknown as NodeJS.WriteStream & { out: string[] };
}

describe('progress bar', () => {
  it('formats bytes, percentage and rate', () => {
    expect(progressLine('loading', 512 * 1024, 2048 * 1024, 1000)).toBe('loading [######------------------] 25% 512 KiB / 2 MiB 512 KiB/s');
    expect(progressLine('x', 0, 0, 0)).toBe('x [########################] 100% 0 B / 0 B');
  });

  it('draws nothing when the stream is not a terminal', () => {
    const s = fakeStream(false);
    const bar = progressBar({ stream: s });
    bar(1, 2, 'a');
    bar(2, 2, 'b');
    expect(s.out).toEqual([]);
  });

  it('redraws at most once per interval and ends the line when done', () => {
    const s = fakeStream(true);
    let t = 0;
    const bar = progressBar({ stream: s, now: () => t, intervalMs: 100 });
    bar(1, 10, 'a');
    t = 50;
    bar(2, 10, 'b'); // throttled
    t = 150;
    bar(3, 10, 'c');
    bar(10, 10, 'd'); // the last one always draws
    bar(10, 10, 'd'); // and nothing after it
    expect(s.out).toHaveLength(3);
    expect(s.out.every((l) => l.startsWith('\r'))).toBe(true);
    expect(s.out[1]).toContain(' 30% ');
    expect(s.out[2]).toMatch(/100% .*\n$/);
  });
});
