/**
 * `mixattn calibrate` and calibrate(): bad input gets one clear line naming the parameter or
 * file, before anything heavy runs, and leaves no output directory behind; the command's
 * normal output (a summary on stdout, progress on stderr).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCalibrate } from '../../lib/cli/calibrate.js';
import type { CliIo } from '../../lib/cli/generate.js';
import { calibrate } from '../../lib/eigen/calibrate.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { tempRoot } from '../hf/helpers.js';
import { testWeights, tinyConfig, writeTestModel, writeText } from './helpers.js';

const t = tempRoot();
afterAll(() => t.cleanup());

const cfg = tinyConfig({ numLayers: 2 });
const model = writeTestModel(t.dir('m'), cfg, testWeights(cfg, presetPlan('standard', 2)));
const data = writeText(t.dir('data.txt'), 8000);

function io(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (s) => void (out += s), stderr: (s) => void (err += s), out: () => out, err: () => err };
}

const run = (args: string[], o = io()) => runCalibrate(args, o);
const base = (out: string) => ['--model', model, '--data', data, '--out', out, '--samples', '2', '--seq-len', '32', '--backend', 'cpu', '--threads', '2'];

describe('mixattn calibrate', () => {
  it('writes the model, a summary on stdout and progress on stderr', async () => {
    const o = io();
    const out = t.dir('ok');
    await run(base(out), o);
    expect(o.out()).toMatch(new RegExp(`^${out}: k ranks \\d+,\\d+; v ranks \\d+,\\d+; K/V cache at [\\d.]+% of full width \\([\\d.]+ s\\)\\n$`));
    expect(o.err()).toMatch(/calibrate: captured 2 x 32 tokens/);
    expect(o.err()).toMatch(/calibrate: layer 1: k rank \d+, v rank \d+ of 32/);
    expect(readdirSync(out).sort()).toEqual(['calibration.json', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readdirSync(t.root).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it.each([
    ['--model', /calibrate: --model is required/],
    ['--data', /calibrate: --data is required/],
    ['--out', /calibrate: --out is required/],
  ])('%s is required', async (flag, msg) => {
    const args = base(t.dir('never'));
    args.splice(args.indexOf(flag), 2);
    await expect(run(args)).rejects.toThrow(msg);
  });

  it.each([
    [['--error-budget', '0'], /--error-budget must be a number in \(0, 1\), got '0'/],
    [['--error-budget', '1'], /--error-budget must be a number in \(0, 1\), got '1'/],
    [['--error-budget', '-0.1'], /--error-budget must be a number in \(0, 1\), got '-0.1'/],
    [['--error-budget', 'lots'], /--error-budget must be a number in \(0, 1\), got 'lots'/],
    [['--samples', '0'], /--samples must be an integer >= 1, got '0'/],
    [['--seq-len', '1'], /--seq-len must be an integer >= 2, got '1'/],
    [['--backend', 'tpu'], /--backend must be cpu, cuda or auto, got 'tpu'/],
    [['--bogus'], /calibrate: Unknown option '--bogus'/],
  ])('usage error %j', async (extra, msg) => {
    await expect(run([...base(t.dir('never')), ...extra])).rejects.toThrow(msg);
    expect(existsSync(t.dir('never'))).toBe(false);
  });

  it('a missing data file, a non-empty output directory or the model itself as output', async () => {
    await expect(run([...base(t.dir('never')), '--data', t.dir('nope.txt')])).rejects.toThrow(`${t.dir('nope.txt')}: calibration data file not found`);
    const full = t.dir('full');
    mkdirSync(full);
    writeFileSync(join(full, 'keep.txt'), 'x');
    await expect(run(base(full))).rejects.toThrow(`${full}: the output directory already exists and is not empty`);
    expect(readdirSync(full)).toEqual(['keep.txt']);
    await expect(run(base(model))).rejects.toThrow(/must not be the input model directory/);
    expect(existsSync(t.dir('never'))).toBe(false);
  });

  it('seq-len beyond the context, too little text, a q/k-norm model, no tokenizer', async () => {
    await expect(run([...base(t.dir('never')), '--seq-len', '300'])).rejects.toThrow(
      /seq-len 300 exceeds the model's context \(.*config\.json: max_position_embeddings = 256\)/,
    );
    const tiny = t.dir('tiny.txt');
    writeFileSync(tiny, 'Only a few words here.');
    await expect(run([...base(t.dir('never')), '--data', tiny])).rejects.toThrow(new RegExp(`${tiny} holds \\d+ tokens; one calibration sample needs 31 \\(seq-len 32\\)`));

    const qcfg = tinyConfig({ numLayers: 2, qkNorm: true });
    const qwen3 = writeTestModel(t.dir('qwen3'), qcfg, testWeights(qcfg, presetPlan('standard', 2)), { arch: 'qwen3' });
    await expect(calibrate({ model: qwen3, data, out: t.dir('never'), backend: 'cpu', seqLen: 32 })).rejects.toThrow(
      /qwen3\/config\.json: Qwen3ForCausalLM normalises q and k per head \(q_norm\/k_norm\).*cannot fold/,
    );
    const bare = writeTestModel(t.dir('bare'), cfg, testWeights(cfg, presetPlan('standard', 2)));
    rmSync(join(bare, 'tokenizer.json'));
    await expect(calibrate({ model: bare, data, out: t.dir('never'), backend: 'cpu', seqLen: 32 })).rejects.toThrow(/bare: has no tokenizer\.json/);
    await expect(calibrate({ model, data, out: t.dir('never'), errorBudget: 1 })).rejects.toThrow(/error budget must be in \(0, 1\), got 1/);
    await expect(calibrate({ model, data, out: t.dir('never'), errorBudget: 0 })).rejects.toThrow(/error budget must be in \(0, 1\), got 0/);
    expect(existsSync(t.dir('never'))).toBe(false);
  });

  it('refuses a model that is already low-rank, a plan with its own ranks or with two windows', async () => {
    const out = t.dir('ok');
    await expect(calibrate({ model: out, data, out: t.dir('never'), backend: 'cpu', seqLen: 32 })).rejects.toThrow(/already low-rank \(it has eigen_attention\)/);
    await expect(calibrate({ model, data, out: t.dir('never'), backend: 'cpu', seqLen: 32, plan: '0 1:k8v8' })).rejects.toThrow(/layer 1 has a kvRank/);
    await expect(calibrate({ model, data, out: t.dir('never'), backend: 'cpu', seqLen: 32, plan: '0s16 1s8' })).rejects.toThrow(
      /plan 'custom' mixes sliding windows \(16, 8\); config\.json has one sliding_window/,
    );
    expect(existsSync(t.dir('never'))).toBe(false);
  });
});
