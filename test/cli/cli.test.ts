import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { runInspect } from '../../lib/cli/inspect.js';
import { runDemo } from '../../lib/cli/demo.js';

interface PlanJson {
  name: string;
  kvBytesPerToken: number;
  kvBytesAtContext: number;
  maxConcurrentSequences: number;
  allocatorReached: number;
}

describe('mixattn inspect', () => {
  const args = ['--layers', '24', '--kv-heads', '8', '--head-dim', '128', '--context', '32768', '--budget', '40GiB'];

  it('--json: every MixAttention preset uses a small fraction of standard at 32k, and the allocator reaches the maximum', () => {
    const { plans } = JSON.parse(runInspect([...args, '--json'])) as { plans: PlanJson[] };
    const byName = new Map(plans.map((p) => [p.name, p]));
    const standard = byName.get('standard')!;
    // 24 layers × 8 heads × 128 × (K+V) × 2 bytes.
    expect(standard.kvBytesPerToken).toBe(24 * 8 * 128 * 2 * 2);
    expect(standard.kvBytesAtContext).toBe(32768 * standard.kvBytesPerToken);
    expect(standard.maxConcurrentSequences).toBe(Math.floor((40 * 2 ** 30) / standard.kvBytesAtContext));
    for (const name of ['ma', 'ma-endslide', 'ma-offset', 'ma-pairs', 'characterai']) {
      const p = byName.get(name)!;
      expect(p.kvBytesAtContext / standard.kvBytesAtContext).toBeLessThan(0.15);
      expect(p.maxConcurrentSequences).toBeGreaterThan(6 * standard.maxConcurrentSequences);
    }
    for (const p of plans) expect(p.allocatorReached).toBe(p.maxConcurrentSequences);
  });

  it('prints a table and accepts notations; bad options are one-line errors', () => {
    const text = runInspect([...args, '--plan', 'standard;0 0 2 2 4 4 6 6 8 8 10 10 12 12 14 14 16 16 18 18 20 20 22 22']);
    expect(text).toMatch(/standard\s+24\s+1\s+96 KiB\s+3 GiB\s+100\.0%\s+13\s+13/);
    expect(text).toMatch(/custom\s+12\s+1\s+48 KiB\s+1\.5 GiB\s+50\.0%\s+26\s+26/);
    expect(() => runInspect(['--layers', 'x'])).toThrow(/--layers must be an integer >= 1, got 'x'/);
    expect(() => runInspect(['--plan', 'nope'])).toThrow(/nope/);
    expect(() => runInspect(['--budget', '12 parsecs'])).toThrow(/12 parsecs/);
  });

  it('runs as the installed bin', () => {
    const bin = 'dist/lib/cli/main.js';
    expect(existsSync(bin), 'dist is built by `npm install` (prepare)').toBe(true);
    const out = execFileSync(process.execPath, [bin, 'inspect', ...args, '--plan', 'standard,ma', '--json'], { encoding: 'utf8' });
    expect((JSON.parse(out) as { plans: PlanJson[] }).plans.map((p) => p.name)).toEqual(['standard', 'ma']);
  });
});

describe('mixattn demo --random', () => {
  it('generates under standard and a MixAttention plan and reports tokens/s and KV memory', async () => {
    let text = '';
    const io = { stdout: (t: string) => void (text += t), stderr: () => {} };
    await runDemo(['--random', '--batch', '2', '--prompt', '80', '--new', '3', '--window', '16', '--plan', 'standard,ma', '--threads', '2'], io);
    expect(text).toMatch(/^mixattn demo --random: built-in random-weights model \(12 layers/);
    const row = (name: string) => text.split('\n').find((l) => l.startsWith(name + ' '))!.trim().split(/\s{2,}/);
    const [, prefill, decode, kv, first] = row('standard');
    expect(Number(prefill)).toBeGreaterThan(0);
    expect(Number(decode)).toBeGreaterThan(0);
    expect(first.split(' ')).toHaveLength(3);
    const mb = (s: string) => parseFloat(s) * (s.endsWith('MiB') ? 1024 : 1);
    expect(mb(row('ma')[3])).toBeLessThan(mb(kv) / 2);
  });
});
