import { describe, expect, it } from 'vitest';
import { formatBytes, parseBytes } from '../../lib/kv/bytes.js';
import { kvReport } from '../../lib/kv/report.js';
import { presetPlan } from '../../lib/plan/presets.js';

// The brief's example: 24 layers, 8 KV heads of 128, bf16, 32k context, 40 GiB.
const big = { numKvHeads: 8, headDim: 128, dtypeBytes: 2, context: 32768, budgetBytes: '40GiB' } as const;

describe('kvReport', () => {
  it('reports a standard plan and reaches its maximum', () => {
    const r = kvReport(presetPlan('standard', 24), big);
    expect(r).toMatchObject({
      name: 'standard',
      layers: 24,
      blockSize: 16,
      pageBytes: 16 * 8 * 256 * 2,
      context: 32768,
      chunk: 2048,
      budgetBytes: 40 * 2 ** 30,
      totalPages: 655360,
      kvBytesPerToken: 24 * 8 * 256 * 2,
      pagesPerSequence: 24 * 2048,
      kvBytesAtContext: 3 * 2 ** 30,
      maxConcurrentSequences: 13,
      allocatorReached: 13,
    });
    expect(r.cacheClasses).toHaveLength(1);
    expect(r.cacheClasses[0]).toMatchObject({ kind: 'global', window: 0, blocksAtContext: 2048, pagesAtContext: 24 * 2048 });
  });

  it('reports a MixAttention plan: shared and sliding caches, many more sequences', () => {
    const plan = presetPlan('ma', 24);
    const r = kvReport(plan, big);
    const [global, sliding] = r.cacheClasses;
    expect(global).toMatchObject({ kind: 'global', owners: [0], bytesPerToken: 8 * 256 * 2, blocksAtContext: 2048 });
    expect(global.layers).toEqual(plan.layers.flatMap((s, i) => (s.kvSource === 0 ? [i] : [])));
    expect(sliding.kind).toBe('sliding');
    expect(sliding.window).toBe(1024);
    // a 2048-token step holds the chunk and the window behind it: (2048 + 1024) / 16 blocks
    expect(sliding.blocksAtContext).toBe(192);
    expect(r.kvBytesAtContext).toBe(r.pagesPerSequence * r.pageBytes);
    expect(r.kvBytesAtContext).toBeLessThan(3 * 2 ** 30 / 10);
    expect(r.maxConcurrentSequences).toBeGreaterThan(10 * 13);
    expect(r.allocatorReached).toBe(r.maxConcurrentSequences);
  });

  it('reaches the maximum for every preset and several chunks', () => {
    for (const name of ['sliding', 'ma-endslide', 'ma-offset', 'ma-pairs', 'characterai', 'gemma3', 'cla2']) {
      for (const chunk of [2048, 500]) {
        const r = kvReport(presetPlan(name, 24), { ...big, context: 30001, chunk });
        expect(r.allocatorReached, `${name} chunk ${chunk}`).toBe(r.maxConcurrentSequences);
      }
    }
    const tokenByToken = kvReport(presetPlan('ma', 12, { window: 64 }), { ...big, context: 4000, budgetBytes: 2 ** 30, chunk: 1 });
    expect(tokenByToken.allocatorReached).toBe(tokenByToken.maxConcurrentSequences);
  });

  it('names bad parameters', () => {
    const plan = presetPlan('standard', 2);
    expect(() => kvReport(plan, { ...big, context: 0 })).toThrow(/context/);
    expect(() => kvReport(plan, { ...big, chunk: 0 })).toThrow(/chunk/);
    expect(() => kvReport(plan, { ...big, budgetBytes: 'lots' })).toThrow(/invalid byte size "lots"/);
    expect(() => kvReport(plan, { ...big, budgetBytes: -5 })).toThrow(/budgetBytes/);
  });
});

describe('parseBytes / formatBytes', () => {
  it('parses decimal and binary units exactly', () => {
    expect(parseBytes('40GiB')).toBe(42949672960);
    expect(parseBytes('40 GB')).toBe(40e9);
    expect(parseBytes('512MiB')).toBe(512 * 2 ** 20);
    expect(parseBytes('1.5KiB')).toBe(1536);
    expect(parseBytes('0.1KB')).toBe(100);
    expect(parseBytes('0.57 kb')).toBe(570);
    expect(parseBytes('2TiB')).toBe(2 * 2 ** 40);
    expect(parseBytes('3tb')).toBe(3e12);
    expect(parseBytes('123')).toBe(123);
    expect(parseBytes('7B')).toBe(7);
    expect(parseBytes('1.9B')).toBe(1);
  });

  it('rejects what it cannot read, saying what it expects', () => {
    for (const bad of ['', 'GB', '-1GB', '1e9', '40 GiBs', '4 0GB', '1,5GB', '10 bits']) {
      expect(() => parseBytes(bad)).toThrow(/invalid byte size .*expected a number with an optional unit/);
    }
    expect(() => parseBytes('99999999TiB')).toThrow(/too large/);
  });

  it('formats with binary units', () => {
    expect(formatBytes(42949672960)).toBe('40 GiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(100)).toBe('100 B');
  });
});
