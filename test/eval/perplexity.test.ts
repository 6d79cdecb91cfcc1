/**
 * Held-out perplexity through the engine against two independent computations: the float64
 * reference transformer run window by window on the fixture's own weights, and HF's logits
 * stored with the fixtures.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../lib/hf/load.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { formatPlan } from '../../lib/plan/notation.js';
import { heldoutTokens, perplexity, tokenNll, windowsOf } from '../../lib/eval/perplexity.js';
import { referenceForward } from '../reference/transformer64.js';
import { fixtureDir, heldoutText, referenceModel, referenceNll } from './helpers.js';

describe('windowsOf', () => {
  it('cuts non-overlapping windows and leaves out a last window of one token', () => {
    expect(windowsOf(10, 4)).toEqual([{ start: 0, end: 4 }, { start: 4, end: 8 }, { start: 8, end: 10 }]);
    expect(windowsOf(9, 4)).toEqual([{ start: 0, end: 4 }, { start: 4, end: 8 }]);
    expect(windowsOf(3, 8)).toEqual([{ start: 0, end: 3 }]);
    expect(windowsOf(1, 8)).toEqual([]);
  });
});

describe('tokenNll', () => {
  it('is −log softmax in float64, stable for large logits', () => {
    const row = Float32Array.from([1000, 999, 998]);
    const z = 1 + Math.exp(-1) + Math.exp(-2);
    expect(tokenNll(row, 0)).toBeCloseTo(Math.log(z), 12);
    expect(tokenNll(row, 2)).toBeCloseTo(2 + Math.log(z), 12);
  });
});

describe('heldoutTokens', () => {
  it('encodes only a prefix of a long text, giving the same first tokens as encoding it all', async () => {
    const tok = await Tokenizer.fromDir(fixtureDir('llama3'));
    const text = heldoutText(200);
    const all = tok.encode(text);
    expect(all.length).toBeGreaterThan(2000);
    const ids = heldoutTokens(tok, text, 300);
    expect(ids).toEqual(all.slice(0, 300));
    expect(heldoutTokens(tok, text, 10 * all.length)).toEqual(all); // asks for more than there is
  });
});

describe('perplexity through the engine', () => {
  it('equals the float64 reference over several windows (sliding + shared KV fixture), whatever the step budget', async () => {
    const dir = fixtureDir('mixattn');
    const ref = await referenceModel(dir);
    expect(formatPlan(ref.plan)).toBe('w=8 0 1s 1s 0 4s 4s');
    const tok = await Tokenizer.fromDir(dir);
    const ids = heldoutTokens(tok, heldoutText(20, 3), 70);
    expect(ids).toHaveLength(70);
    const context = 24; // windows 24 + 24 + 22, longer than the window of 8
    let nll = 0;
    let scored = 0;
    for (let s = 0; s < ids.length; s += context) {
      const w = ids.slice(s, s + context);
      const logits = referenceForward(ref.config, ref.plan, ref.weights, w);
      for (let p = 0; p + 1 < w.length; p++) {
        nll += referenceNll(logits[p], w[p + 1]);
        scored++;
      }
    }
    const expected = nll / scored;
    expect(scored).toBe(70 - 3);

    await using engine = await loadEngine(dir, { threads: 2, kvPages: 64, prefixCache: false });
    // 7-token chunks of one window a step; whole windows two a step.
    for (const stepTokens of [7, 48]) {
      const progress: number[] = [];
      const r = await perplexity(engine, ids, { context, stepTokens, onProgress: (d) => progress.push(d) });
      expect(r.windows).toBe(3);
      expect(r.tokens).toBe(70);
      expect(r.scoredTokens).toBe(67);
      expect(Math.abs(r.meanNll - expected)).toBeLessThan(1e-5 * expected);
      expect(r.ppl).toBeCloseTo(Math.exp(r.meanNll), 12);
      expect(progress[progress.length - 1]).toBe(70);
      expect(engine.blocks.usedPages).toBe(0); // every window's blocks returned
    }
  });

  for (const name of ['llama3', 'mixattn']) {
    it(`${name}: equals the NLL of HF's logits on the fixture's prompt + greedy sequences`, async () => {
      const dir = fixtureDir(name);
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
        vocab_size: number;
        prompts: { ids: number[]; greedy: number[]; prompt_logits_row: number; greedy_logits_row: number }[];
      };
      const buf = readFileSync(join(dir, 'logits.f32'));
      const V = expected.vocab_size;
      const hfRow = (r: number) => Float64Array.from({ length: V }, (_, j) => buf.readFloatLE((r * V + j) * 4));
      await using engine = await loadEngine(dir, { threads: 2, kvPages: 64, prefixCache: false });
      for (const p of expected.prompts) {
        // HF's rows: every prompt position, then greedy step k at position n − 1 + k.
        const n = p.ids.length;
        const seq = [...p.ids, ...p.greedy];
        const row = (t: number) => (t < n ? p.prompt_logits_row + t : p.greedy_logits_row + t - n + 1);
        let nll = 0;
        for (let t = 0; t + 1 < seq.length; t++) nll += referenceNll(hfRow(row(t)), seq[t + 1]);
        const r = await perplexity(engine, seq, { context: seq.length, stepTokens: 16 });
        expect(r.scoredTokens).toBe(seq.length - 1);
        expect(Math.abs(r.meanNll - nll / (seq.length - 1))).toBeLessThan(1e-4);
      }
    });
  }

  it('refuses token ids outside the model vocabulary and texts of under two tokens', async () => {
    await using engine = await loadEngine(fixtureDir('llama3'), { threads: 2, kvPages: 16 });
    await expect(perplexity(engine, [1, 2, 300], { context: 8, stepTokens: 8 })).rejects.toThrow(/token 2 has id 300, outside the model's vocabulary \(vocab_size 300\)/);
    await expect(perplexity(engine, [5], { context: 8, stepTokens: 8 })).rejects.toThrow(/has 1 token\(s\); at least 2/);
  });
});
