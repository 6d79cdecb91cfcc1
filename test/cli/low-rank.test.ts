/** `mixattn generate` and `mixattn inspect` on a low-rank K/V checkpoint (eigen_attention). */
import { afterAll, describe, expect, it } from 'vitest';
import { runGenerate, type CliIo } from '../../lib/cli/generate.js';
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
