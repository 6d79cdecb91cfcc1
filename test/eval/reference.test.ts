/**
 * `eval --reference`: KL(reference ‖ model), top-1 agreement and both perplexities over the
 * held-out windows, against an independent float64 computation (the reference transformer on
 * each checkpoint's stored weights); the eigen columns of a low-rank checkpoint folded from a
 * fixture; and the one-line errors for a reference that does not fit.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEval } from '../../lib/cli/eval.js';
import type { CliIo } from '../../lib/cli/generate.js';
import { loadEngine } from '../../lib/hf/load.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { heldoutTokens, perplexity, windowsOf } from '../../lib/eval/perplexity.js';
import { argmax, compareWithReference, klFromLogProbs, logSoftmax64 } from '../../lib/eval/reference.js';
import { referenceForward } from '../reference/transformer64.js';
import { fixtureDir, heldoutText, referenceModel, writeEvalInputs, type ReferenceModel } from './helpers.js';
import { writeFoldedLowRank, writeScaledCopy } from './derived-models.js';

// The mixattn fixture (owners 0, 1, 4) folded: keys at rank 8 / full / 12, values at 12 / 8 / full.
const FOLD = { kRanks: [8, 16, 16, 8, 12, 12], vRanks: [12, 8, 8, 12, 16, 16], errorBudget: 0.05 };
const OPTS = { threads: 2, kvPages: 64, prefixCache: false };

let root: string;
let folded: string;
let scaled: string;
const mixattn = fixtureDir('mixattn');
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mixattn-eval-ref-'));
  folded = await writeFoldedLowRank(mixattn, join(root, 'mixattn-lowrank'), FOLD);
  scaled = await writeScaledCopy(mixattn, join(root, 'mixattn-scaled'), 'model.layers.4.self_attn.v_proj.weight', 1.5);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const captureIo = (): CliIo & { out: string[] } => {
  const out: string[] = [];
  return { out, stdout: (t) => void out.push(t), stderr: () => undefined };
};

describe('log-softmax, KL and argmax on the host', () => {
  it('match a hand computation', () => {
    const p = logSoftmax64(Float32Array.from([2, 0, 1]), new Float64Array(3));
    const z = Math.exp(2) + 1 + Math.exp(1);
    expect([...p].map(Math.exp)).toEqual([Math.exp(2) / z, 1 / z, Math.exp(1) / z].map((x) => expect.closeTo(x, 14)));
    const q = logSoftmax64(Float32Array.from([0, 0, 0]), new Float64Array(3));
    // KL(p ‖ uniform) = Σ p log p + log 3.
    const expected = [...p].reduce((a, lp) => a + Math.exp(lp) * lp, 0) + Math.log(3);
    expect(klFromLogProbs(p, q)).toBeCloseTo(expected, 14);
    expect(klFromLogProbs(p, p)).toBe(0);
    expect(argmax(Float32Array.from([1, 5, 5, 2]))).toBe(1); // the first of equal maxima, as on the device
  });
});

/** What the comparison must give, from the float64 reference run window by window (written independently of lib/eval). */
function expectedComparison(model: ReferenceModel, ref: ReferenceModel, ids: number[], context: number) {
  const logSoftmax = (row: Float64Array) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    return row.map((x) => x - lse);
  };
  const top = (row: Float64Array) => row.indexOf(Math.max(...row));
  const margin = (row: Float64Array) => {
    const s = [...row].sort((a, b) => b - a);
    return s[0] - s[1];
  };
  let kl = 0;
  let agree = 0;
  let nllM = 0;
  let nllR = 0;
  let n = 0;
  let minMargin = Infinity;
  for (const { start, end } of windowsOf(ids.length, context)) {
    const w = ids.slice(start, end);
    const lm = referenceForward(model.config, model.plan, model.weights, w);
    const lr = referenceForward(ref.config, ref.plan, ref.weights, w);
    for (let p = 0; p + 1 < w.length; p++) {
      const q = logSoftmax(lm[p]);
      const r = logSoftmax(lr[p]);
      kl += r.reduce((a, lp, i) => a + Math.exp(lp) * (lp - q[i]), 0);
      if (top(lm[p]) === top(lr[p])) agree++;
      minMargin = Math.min(minMargin, margin(lm[p]), margin(lr[p]));
      nllM -= q[w[p + 1]];
      nllR -= r[w[p + 1]];
      n++;
    }
  }
  return { meanKl: kl / n, top1: agree / n, pplModel: Math.exp(nllM / n), pplRef: Math.exp(nllR / n), positions: n, minMargin };
}

describe('compareWithReference', () => {
  it('gives KL 0, top-1 100% and equal perplexities when the model is the reference', async () => {
    const ids = heldoutTokens(await Tokenizer.fromDir(mixattn), heldoutText(12, 5), 90);
    await using a = await loadEngine(mixattn, OPTS);
    await using b = await loadEngine(mixattn, OPTS);
    const c = await compareWithReference(a, b, ids, { context: 32, stepTokens: 40 });
    expect(c.model.scoredTokens).toBe(90 - 3);
    expect(c.meanKl).toBe(0);
    expect(c.top1Agreement).toBe(1);
    expect(c.model.meanNll).toBe(c.reference.meanNll);
    expect(c.model.ppl).toBeCloseTo((await perplexity(a, ids, { context: 32, stepTokens: 40 })).ppl, 12);
    expect(a.blocks.usedPages + b.blocks.usedPages).toBe(0);
  });

  // Random-weights fixtures are chaotic: the fold (random bases) moves almost every argmax
  // (KL ≈ 2.2 nats); scaling one v_proj by 1.5 only some of them (KL ≈ 0.03, top-1 ≈ 79%).
  const derived: [string, () => string, [number, number]][] = [
    ['a low-rank fold of the fixture', () => folded, [0, 0.1]],
    ['the fixture with one tensor scaled', () => scaled, [0.3, 0.95]],
  ];
  for (const [what, dir, top1Range] of derived) {
    it(`equals the float64 reference on ${what}, whatever the step budget`, async () => {
      const ids = heldoutTokens(await Tokenizer.fromDir(mixattn), heldoutText(12, 7), 70);
      const context = 24; // windows 24 + 24 + 22, longer than the sliding window of 8
      const want = expectedComparison(await referenceModel(dir()), await referenceModel(mixattn), ids, context);
      expect(want.meanKl).toBeGreaterThan(1e-3);
      expect(want.top1).toBeGreaterThanOrEqual(top1Range[0]);
      expect(want.top1).toBeLessThanOrEqual(top1Range[1]);
      expect(want.minMargin).toBeGreaterThan(1e-3); // no near-tie an fp32 argmax could flip
      await using model = await loadEngine(dir(), OPTS);
      await using ref = await loadEngine(mixattn, OPTS);
      for (const stepTokens of [7, 48]) {
        const c = await compareWithReference(model, ref, ids, { context, stepTokens });
        expect(c.model.scoredTokens).toBe(want.positions);
        expect(Math.abs(c.meanKl - want.meanKl)).toBeLessThan(1e-4 * want.meanKl);
        expect(c.top1Agreement).toBe(want.top1);
        expect(Math.abs(c.model.ppl - want.pplModel)).toBeLessThan(1e-5 * want.pplModel);
        expect(Math.abs(c.reference.ppl - want.pplRef)).toBeLessThan(1e-5 * want.pplRef);
      }
    });
  }
});

describe('mixattn eval --reference', () => {
  let inputs: { heldout: string; retrieval: string };
  const base = () => ['--heldout', inputs.heldout, '--retrieval', inputs.retrieval, '--max-heldout-tokens', '200', '--context', '64', '--threads', '2', '--backend', 'cpu'];
  const speed = ['--speed-prompt', '16', '--speed-tokens', '2', '--speed-batch', '1'];
  beforeAll(async () => {
    inputs = writeEvalInputs(join(root, 'data'), await Tokenizer.fromDir(mixattn), { contexts: [24], depths: [0, 1], perCell: 1, paragraphs: 8 });
  });

  it('reports KL, top-1, both perplexities and the eigen columns', async () => {
    const io = captureIo();
    const out = join(root, 'out', 'q');
    const r = (await runEval(['--model', folded, '--model', mixattn, '--reference', mixattn, ...base(), ...speed, '--out', out], io))!;
    expect(r.reference).toMatchObject({ dir: mixattn, label: 'mixattn', kvBytesPerToken: 2 * 3 * 32 * 2 });
    expect(r.reference!.kvRanks.errorBudget).toBeUndefined();
    const [low, same] = r.models;
    // Owners 0, 1, 4; per token 2 KV heads × Σ(k + v) = 2 × (20 + 24 + 28), bf16.
    expect(low.kvRanks).toEqual({
      headDim: 16,
      owners: [0, 1, 4],
      kRanks: [8, 16, 12],
      vRanks: [12, 8, 16],
      k: { mean: 12, min: 8, max: 16 },
      v: { mean: 12, min: 8, max: 16 },
      errorBudget: 0.05,
    });
    expect(low.kv.bytesPerToken).toBe(2 * 72 * 2);
    expect(low.vsReference!.kvVsReference).toBe(0.75);
    expect(low.vsReference!.meanKl).toBeGreaterThan(1e-4);
    expect(low.vsReference!.positions).toBe(low.heldout.scoredTokens);
    expect(same.vsReference!.meanKl).toBe(0);
    expect(same.vsReference!.top1Agreement).toBe(1);
    expect(same.heldout.ppl).toBe(same.vsReference!.referencePpl);
    expect(low.vsReference!.referencePpl).toBe(same.heldout.ppl); // the reference scored on the same windows each time
    expect(same.kvRanks.k).toEqual({ mean: 16, min: 16, max: 16 });

    const md = readFileSync(`${out}.md`, 'utf8');
    expect(md).toContain('## Low-rank K/V vs reference');
    const section = md.split('## Low-rank K/V vs reference')[1].split('## Details')[0];
    const row = (label: string) => section.split('\n').find((l) => l.startsWith(`| ${label} | `))!.split('|').map((c) => c.trim());
    expect(row('mixattn-lowrank').slice(1, 12)).toEqual([
      'mixattn-lowrank',
      '0.05',
      '12.0 (8–16)',
      '12.0 (8–16)',
      '288',
      '75.0%',
      low.vsReference!.meanKl.toExponential(3),
      `${(100 * low.vsReference!.top1Agreement).toFixed(2)}%`,
      low.heldout.ppl.toFixed(3),
      same.heldout.ppl.toFixed(3),
      low.speed[0].decodeTokensPerS.toFixed(1),
    ]);
    expect(row('mixattn').slice(2, 9)).toEqual(['–', '16', '16', '384', '100.0%', '0.000e+0', '100.00%']);
    expect(JSON.parse(readFileSync(`${out}.json`, 'utf8')).models[0].vsReference.meanKl).toBe(low.vsReference!.meanKl);
  });

  it('shows the eigen columns of a low-rank checkpoint without a reference', async () => {
    const io = captureIo();
    const r = (await runEval(['--model', folded, ...base(), ...speed, '--out', join(root, 'out', 'noref')], io))!;
    expect(r.reference).toBeUndefined();
    expect(r.models[0].vsReference).toBeUndefined();
    const md = io.out.join('');
    expect(md).toContain('## Low-rank K/V vs reference');
    expect(md).toContain('| mixattn-lowrank | 0.05 | 12.0 (8–16) | 12.0 (8–16) | 288 | – | – | – |');
  });

  it('refuses a reference with another tokenizer or vocabulary, or too few positions, before loading anything', async () => {
    const run = (ref: string, extra: string[] = []) => runEval(['--model', folded, '--reference', ref, ...base(), ...speed, '--out', join(root, 'never'), ...extra], captureIo());
    const copy = (name: string, edit: (config: Record<string, unknown>, tokenizer: Record<string, any>) => void) => {
      const dir = join(root, name);
      cpSync(mixattn, dir, { recursive: true });
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
      edit(config, tok);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok, null, 1)); // reformatted: not a difference by itself
      return dir;
    };
    const reformatted = copy('reformatted', () => undefined);
    const otherTokens = copy('other-tokens', (_, t) => {
      const vocab = t.model.vocab as Record<string, number>;
      const [word, id] = Object.entries(vocab).find(([, i]) => i === 200)!;
      delete vocab[word];
      vocab[`${word}x`] = id;
    });
    const otherVocab = copy('other-vocab', (c) => void (c.vocab_size = 301));
    const short = copy('short', (c) => void (c.max_position_embeddings = 48));
    await expect(run(otherTokens)).rejects.toThrow(/^--reference .*other-tokens: tokenizer\.json differs from .*mixattn-lowrank's \(the model and its reference must share the tokenizer\)$/);
    await expect(run(otherVocab)).rejects.toThrow(/^--reference .*other-vocab: vocab_size 301 differs from .*mixattn-lowrank's 300/);
    await expect(run(short)).rejects.toThrow(/held-out window 64 exceeds --reference .*short's max_position_embeddings \(48\); pass a smaller --context$/);
    await expect(run(join(root, 'absent'))).rejects.toThrow(/absent: model directory does not exist/);
    expect(existsSync(join(root, 'never.json'))).toBe(false);
    const ok = await run(reformatted, ['--out', join(root, 'out', 'reformatted')]);
    expect(ok!.models[0].vsReference!.meanKl).toBeGreaterThan(0);
  });
});
