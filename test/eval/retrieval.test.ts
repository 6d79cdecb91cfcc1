/**
 * Retrieval scoring: the exact-prefix rule, the tallies, and the whole path through the
 * engine (batched, chunked prefill, greedy decode) against greedy continuations computed by
 * the float64 reference: an answer the continuation starts with scores 1, any other 0.
 */
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../lib/hf/load.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { encodeRetrieval, isCorrect, retrieval, tallyRetrieval } from '../../lib/eval/retrieval.js';
import type { RetrievalItem } from '../../lib/eval/inputs.js';
import { fixtureDir, referenceGreedy, referenceModel, fillerText } from './helpers.js';

const item = (id: string, contextTokens: number, depth: number, prompt = 'p', answer = ' 1'): RetrievalItem => ({ id, prompt, answer, contextTokens, depth, line: 1 });

describe('retrieval scoring', () => {
  it('is correct iff the output starts with the answer, exactly', () => {
    expect(isCorrect(' 4821.', ' 4821')).toBe(true);
    expect(isCorrect(' 4821', ' 4821')).toBe(true);
    expect(isCorrect('4821.', ' 4821')).toBe(false); // no trimming
    expect(isCorrect(' 482', ' 4821')).toBe(false);
    expect(isCorrect(' 48210', ' 4821')).toBe(true); // a prefix is all it takes
  });

  it('tallies per context and per (context, depth), sorted', () => {
    const items = [item('a', 256, 1), item('b', 128, 0.5), item('c', 128, 0), item('d', 128, 0.5), item('e', 256, 1)];
    const t = tallyRetrieval(items, [true, false, true, true, false]);
    expect(t.byContext).toEqual([
      { contextTokens: 128, n: 3, correct: 2, accuracy: 2 / 3 },
      { contextTokens: 256, n: 2, correct: 1, accuracy: 0.5 },
    ]);
    expect(t.byCell).toEqual([
      { contextTokens: 128, depth: 0, n: 1, correct: 1, accuracy: 1 },
      { contextTokens: 128, depth: 0.5, n: 2, correct: 1, accuracy: 0.5 },
      { contextTokens: 256, depth: 1, n: 2, correct: 1, accuracy: 0.5 },
    ]);
  });
});

describe('retrieval through the engine', () => {
  it('scores 1 for answers the reference greedy continuation starts with and 0 otherwise (batched, chunked prefill)', async () => {
    const dir = fixtureDir('mixattn');
    const ref = await referenceModel(dir);
    const tok = await Tokenizer.fromDir(dir);
    const prompts = [fillerText(6, 1), fillerText(14, 2), fillerText(9, 3)].map((t) => `${t}\nAnswer: The pass code is`);
    const items: RetrievalItem[] = [];
    const expectedOutputs = new Map<string, string>();
    prompts.forEach((prompt, i) => {
      const ids = tok.encode(prompt);
      expect(ids[0]).toBe(tok.bosTokenId); // this tokenizer's config says add_bos_token
      let greedy = referenceGreedy(ref, ids, 6);
      const output = (k: number) => {
        if (k > greedy.tokens.length) greedy = referenceGreedy(ref, ids, k);
        expect(greedy.minMargin, 'no near-tie on the greedy path').toBeGreaterThan(1e-3);
        return tok.decode(greedy.tokens.slice(0, k)); // greedy paths are prefixes of longer ones
      };
      const newTokens = (answer: string) => tok.encode(answer, { addSpecialTokens: false }).length + 2;
      // The correct answer: the text of the reference's first two greedy tokens.
      const answer = output(2);
      expect(output(newTokens(answer)).startsWith(answer)).toBe(true);
      const wrong = output(newTokens(answer)).startsWith('Z') ? `Q${answer}` : `Z${answer}`;
      const ctx = i < 2 ? 16 : 32;
      items.push({ id: `ok${i}`, prompt, answer, contextTokens: ctx, depth: 0, line: 2 * i + 1 });
      items.push({ id: `bad${i}`, prompt, answer: wrong, contextTokens: ctx, depth: 1, line: 2 * i + 2 });
      expectedOutputs.set(`bad${i}`, output(newTokens(wrong)));
    });

    await using engine = await loadEngine(dir, { threads: 2, kvPages: 128, prefixCache: false });
    const progress: number[] = [];
    const r = await retrieval(engine, tok, items, { batch: 4, stepTokens: 20, onProgress: (d) => progress.push(d) });
    expect(progress).toEqual([4, 6]);
    expect(r.n).toBe(6);
    expect(r.correct).toBe(3);
    expect(r.accuracy).toBe(0.5);
    expect(r.byContext).toEqual([
      { contextTokens: 16, n: 4, correct: 2, accuracy: 0.5 },
      { contextTokens: 32, n: 2, correct: 1, accuracy: 0.5 },
    ]);
    expect(r.byCell.map((c) => [c.contextTokens, c.depth, c.accuracy])).toEqual([
      [16, 0, 1],
      [16, 1, 0],
      [32, 0, 1],
      [32, 1, 0],
    ]);
    // The misses are the wrong answers, with the reference's continuation as the output.
    expect(r.misses.map((m) => m.id).sort()).toEqual(['bad0', 'bad1', 'bad2']);
    for (const m of r.misses) expect(m.output).toBe(expectedOutputs.get(m.id));
    expect(r.meanPromptTokens).toBeCloseTo(prompts.reduce((s, p) => s + 2 * tok.encode(p).length, 0) / 6, 10);
    expect(engine.blocks.usedPages).toBe(0);
  });

  it('generates the answer token count + 2 and refuses prompts outside the vocabulary', async () => {
    const tok = await Tokenizer.fromDir(fixtureDir('llama3'));
    const enc = encodeRetrieval(tok, [item('a', 8, 0, 'hello there', ' 4821')], 300);
    expect(enc[0].prompt).toEqual(tok.encode('hello there'));
    expect(enc[0].newTokens).toBe(tok.encode(' 4821', { addSpecialTokens: false }).length + 2);
    expect(() => encodeRetrieval(tok, [{ ...item('a', 8, 0, 'hello there'), line: 7 }], 5)).toThrow(/retrieval line 7 prompt: token 1 has id \d+, outside the model's vocabulary \(vocab_size 5\)/);
  });
});
