/** `mixattn generate` and `mixattn inspect` on a low-rank K/V checkpoint (eigen_attention). */
import { afterAll, describe, expect, it } from 'vitest';
import { runGenerate, type CliIo } from '../../lib/cli/generate.js';
import { runInspect } from '../../lib/cli/inspect.js';
import { parsePlan } from '../../lib/plan/notation.js';
import { PlanError } from '../../lib/plan/types.js';
import { referenceGreedy } from '../reference/helpers.js';
import { tempRoot } from '../hf/helpers.js';
import { cfg, plan, writeLowRankDir } from '../hf/low-rank-dir.js';

const tmp = tempRoot();
afterAll(() => tmp.cleanup());
const dir = tmp.dir('eigen');
const ref = writeLowRankDir(dir);

function capture(): CliIo & { out: () => string } {
  let out = '';
  return { stdout: (t) => void (out += t), stderr: () => {}, out: () => out };
}

describe('mixattn generate on a low-rank checkpoint', () => {
  const prompt = [3, 17, 5, 40, 22, 9, 1, 33, 12];
  const args = ['--model', dir, '--prompt-ids', prompt.join(','), '--greedy', '--max-tokens', '7', '--ignore-eos', '--json', '--threads', '2'];

  it('gives the float64 reference greedy tokens, under its own plan and with windows overridden', async () => {
    const io = capture();
    await runGenerate(args, io);
    expect((JSON.parse(io.out()) as { tokenIds: number[] }).tokenIds).toEqual(referenceGreedy(cfg, plan, ref, prompt, 7));
    const windows = '0 1s4 1s2 3s4 3s2 0s3';
    const io2 = capture();
    await runGenerate([...args, '--plan', windows], io2);
    const narrowed = parsePlan(windows, { headDim: 16 });
    const ranked = { ...narrowed, layers: narrowed.layers.map((l, i) => ({ ...l, ...(plan.layers[i].kvRank ? { kvRank: plan.layers[i].kvRank } : {}) })) };
    expect((JSON.parse(io2.out()) as { tokenIds: number[] }).tokenIds).toEqual(referenceGreedy(cfg, ranked, ref, prompt, 7));
  });

  it('refuses a plan that changes kv sources, naming the layer', async () => {
    await expect(runGenerate([...args, '--plan', 'standard'], capture())).rejects.toThrow(PlanError);
    await expect(runGenerate([...args, '--plan', 'standard'], capture())).rejects.toThrow(/layer 2 reads layer 2, but in the low-rank checkpoint/);
  });
});

interface PlanJson {
  name: string;
  kvBytesPerToken: number;
  pageBytesPerToken: number;
  kvBytesAtContext: number;
  maxConcurrentSequences: number;
  allocatorReached: number;
}

describe('mixattn inspect with low-rank K/V', () => {
  const plansOf = (args: string[]) => (JSON.parse(runInspect([...args, '--json'])) as { plans: PlanJson[] }).plans;

  it('--model on a low-rank checkpoint: standard, its plan at full width and at its own ranks', () => {
    const plans = plansOf(['--model', dir, '--context', '300', '--budget', '1MiB', '--chunk', '16']);
    expect(plans.map((p) => p.name)).toEqual(['standard', 'checkpoint', 'checkpoint low-rank']);
    // 2 KV heads, bf16: standard 6 owners × 32 wide; the checkpoint 3 owners; at rank (5+16) + (16+3) + (9+11)
    expect(plans.map((p) => p.kvBytesPerToken)).toEqual([6 * 2 * 32 * 2, 3 * 2 * 32 * 2, (21 + 19 + 20) * 2 * 2]);
    for (const p of plans) expect(p.allocatorReached).toBe(p.maxConcurrentSequences);
    expect(plans[2].maxConcurrentSequences).toBeGreaterThan(plans[1].maxConcurrentSequences);
  });

  it('--kv-rank shows every plan at full width and at the rank; the savings multiply', () => {
    const args = ['--layers', '24', '--kv-heads', '8', '--head-dim', '128', '--context', '32768', '--budget', '40GiB'];
    const plans = plansOf([...args, '--plan', 'standard,ma', '--kv-rank', 'k=32,v=48']);
    expect(plans.map((p) => p.name)).toEqual(['standard', 'standard k32v48', 'ma', 'ma k32v48']);
    const [std, stdLow, ma, maLow] = plans;
    expect(stdLow.kvBytesPerToken / std.kvBytesPerToken).toBe(80 / 256);
    expect(maLow.kvBytesAtContext / std.kvBytesAtContext).toBeCloseTo((ma.kvBytesAtContext / std.kvBytesAtContext) * (80 / 256), 12);
    for (const p of plans) expect(p.allocatorReached).toBe(p.maxConcurrentSequences);
    expect(plansOf([...args, '--plan', 'ma', '--kv-rank', '32'])[1].name).toBe('ma k32v32');
    expect(() => runInspect([...args, '--kv-rank', 'k=32'])).toThrow(/--kv-rank must be R or k=R1,v=R2/);
    expect(() => runInspect([...args, '--kv-rank', '256'])).toThrow(/k = 256 must be in \[1, head width 128\]/);
    expect(() => runInspect(['--model', dir, '--layers', '4'])).toThrow(/--layers cannot be given with --model/);
    expect(() => runInspect([...args, '--plan', 'checkpoint'])).toThrow(/needs --model/);
  });
});
