/**
 * Retrieval accuracy through the engine: each prompt is encoded as plain text (no chat
 * template; BOS only where the tokenizer adds one), greedily continued for the answer's
 * token count + 2 tokens, and counts as correct iff the decoded continuation starts with the
 * answer string exactly (nothing trimmed). Prompts run in batches of similar length
 * (chunked prefill, then decode steps of the whole batch, argmax on the backend).
 */
import type { Engine } from '../engine/engine.js';
import { greedyGenerate } from '../engine/greedy.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { RetrievalItem } from './inputs.js';
import { checkIdsInVocab } from './perplexity.js';

export interface RetrievalOptions {
  /** Sequences decoded together. */
  readonly batch: number;
  /** Most prompt tokens one prefill step carries (stepTokens / batch per sequence, at least 16). */
  readonly stepTokens: number;
  /** Called after each batch with the prompts done so far and in all. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface RetrievalCell {
  readonly contextTokens: number;
  /** Absent in the per-context rows. */
  readonly depth?: number;
  readonly n: number;
  readonly correct: number;
  readonly accuracy: number;
}

export interface RetrievalMiss {
  readonly id: string;
  readonly answer: string;
  readonly output: string;
}

export interface RetrievalResult {
  readonly n: number;
  readonly correct: number;
  readonly accuracy: number;
  /** Per context_tokens, ascending. */
  readonly byContext: readonly RetrievalCell[];
  /** Per (context_tokens, depth), ascending. */
  readonly byCell: readonly RetrievalCell[];
  /** Mean prompt length in this model's tokens. */
  readonly meanPromptTokens: number;
  /** The first few wrong answers, to look at. */
  readonly misses: readonly RetrievalMiss[];
  readonly seconds: number;
}

const MISSES_KEPT = 10;

/** The scoring rule: the decoded continuation starts with the answer (exact, untrimmed). */
export function isCorrect(output: string, answer: string): boolean {
  return output.startsWith(answer);
}

/** Correct counts per context and per (context, depth), both sorted ascending. */
export function tallyRetrieval(items: readonly RetrievalItem[], correct: readonly boolean[]): { byContext: RetrievalCell[]; byCell: RetrievalCell[] } {
  const ctx = new Map<number, { n: number; c: number }>();
  const cell = new Map<string, { contextTokens: number; depth: number; n: number; c: number }>();
  items.forEach((it, i) => {
    const a = ctx.get(it.contextTokens) ?? { n: 0, c: 0 };
    a.n++;
    a.c += correct[i] ? 1 : 0;
    ctx.set(it.contextTokens, a);
    const key = `${it.contextTokens}:${it.depth}`;
    const b = cell.get(key) ?? { contextTokens: it.contextTokens, depth: it.depth, n: 0, c: 0 };
    b.n++;
    b.c += correct[i] ? 1 : 0;
    cell.set(key, b);
  });
  const byContext = [...ctx]
    .sort(([x], [y]) => x - y)
    .map(([contextTokens, a]) => ({ contextTokens, n: a.n, correct: a.c, accuracy: a.c / a.n }));
  const byCell = [...cell.values()]
    .sort((x, y) => x.contextTokens - y.contextTokens || x.depth - y.depth)
    .map((b) => ({ contextTokens: b.contextTokens, depth: b.depth, n: b.n, correct: b.c, accuracy: b.c / b.n }));
  return { byContext, byCell };
}

export interface EncodedItem {
  readonly prompt: readonly number[];
  /** Tokens to generate: the answer's token count + 2. */
  readonly newTokens: number;
}

/** Prompt ids (BOS only where the tokenizer adds one) and how many tokens to generate, per item. */
export function encodeRetrieval(tokenizer: Tokenizer, items: readonly RetrievalItem[], vocabSize: number): EncodedItem[] {
  return items.map((it) => {
    const prompt = tokenizer.encode(it.prompt);
    checkIdsInVocab(prompt, vocabSize, `retrieval line ${it.line} prompt`);
    return { prompt, newTokens: tokenizer.encode(it.answer, { addSpecialTokens: false }).length + 2 };
  });
}

export async function retrieval(
  engine: Engine,
  tokenizer: Tokenizer,
  items: readonly RetrievalItem[],
  opts: RetrievalOptions,
  encoded: readonly EncodedItem[] = encodeRetrieval(tokenizer, items, engine.config.vocabSize),
): Promise<RetrievalResult> {
  const t0 = performance.now();
  // Similar lengths together: a batch's prefill ends at about the same step.
  const order = items.map((_, i) => i).sort((a, b) => encoded[a].prompt.length - encoded[b].prompt.length);
  const outputs: string[] = new Array<string>(items.length);
  // One chunk size for every batch: the KV pool is sized for batch × this growth.
  const prefillChunk = Math.max(16, Math.floor(opts.stepTokens / opts.batch));
  for (let g = 0; g < order.length; g += opts.batch) {
    const group = order.slice(g, g + opts.batch);
    const maxNew = Math.max(...group.map((i) => encoded[i].newTokens));
    const r = await greedyGenerate(engine, group.map((i) => encoded[i].prompt), { maxNewTokens: maxNew, prefillChunk });
    group.forEach((i, j) => (outputs[i] = tokenizer.decode(r.tokens[j].slice(0, encoded[i].newTokens))));
    opts.onProgress?.(Math.min(order.length, g + opts.batch), order.length);
  }
  const correct = items.map((it, i) => isCorrect(outputs[i], it.answer));
  const n = items.length;
  const c = correct.filter(Boolean).length;
  const misses = items
    .map((it, i) => ({ id: it.id, answer: it.answer, output: outputs[i], ok: correct[i] }))
    .filter((m) => !m.ok)
    .slice(0, MISSES_KEPT)
    .map(({ id, answer, output }) => ({ id, answer, output }));
  return {
    n,
    correct: c,
    accuracy: c / n,
    ...tallyRetrieval(items, correct),
    meanPromptTokens: encoded.reduce((s, e) => s + e.prompt.length, 0) / n,
    misses,
    seconds: (performance.now() - t0) / 1000,
  };
}
