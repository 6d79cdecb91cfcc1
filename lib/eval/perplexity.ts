/**
 * Held-out perplexity through the engine: the token stream is cut into non-overlapping
 * windows of `context` tokens, each window runs as a fresh sequence (so every window sees
 * only its own tokens), and every token but a window's first is scored from the logits of
 * the position before it, with the log-softmax taken in float64 on the host.
 */
import type { Engine } from '../engine/engine.js';
import type { Tokenizer } from '../tokenizer/index.js';

export interface PerplexityOptions {
  /** Window length in tokens. */
  readonly context: number;
  /** Most tokens one engine step carries (windows are batched and chunked to fit). */
  readonly stepTokens: number;
  /** Called after every step with the tokens run so far and in all. */
  readonly onProgress?: (doneTokens: number, totalTokens: number) => void;
}

export interface PerplexityResult {
  /** Tokens of the held-out stream that were run. */
  readonly tokens: number;
  readonly windows: number;
  readonly context: number;
  /** Tokens whose probability was scored (tokens − windows). */
  readonly scoredTokens: number;
  /** Mean negative log-likelihood in nats per scored token. */
  readonly meanNll: number;
  /** exp(meanNll). */
  readonly ppl: number;
  readonly seconds: number;
}

/**
 * The first `maxTokens` tokens of `text` as the tokenizer encodes it (BOS only where the
 * tokenizer adds one). Only a prefix of a long text is encoded: it grows until it yields
 * enough tokens, cut at a line end so no word is split.
 */
export function heldoutTokens(tokenizer: Tokenizer, text: string, maxTokens: number): number[] {
  let chars = Math.min(text.length, maxTokens * 8);
  for (;;) {
    let end = chars;
    if (end < text.length) {
      const nl = text.lastIndexOf('\n', end);
      if (nl > 0) end = nl;
    }
    const ids = tokenizer.encode(text.slice(0, end));
    if (ids.length >= maxTokens || end >= text.length) return ids.slice(0, maxTokens);
    chars = Math.min(text.length, chars * 2);
  }
}

/** −log softmax(row)[target], computed in float64. */
export function tokenNll(row: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return max + Math.log(sum) - row[target];
}

/** The windows [start, end) a stream of n tokens is cut into; a last window of one token cannot be scored and is left out. */
export function windowsOf(n: number, context: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (let start = 0; start < n; start += context) {
    const end = Math.min(n, start + context);
    if (end - start >= 2) out.push({ start, end });
  }
  return out;
}

export function checkIdsInVocab(ids: ArrayLike<number>, vocabSize: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocabSize) {
      throw new RangeError(`${what}: token ${i} has id ${ids[i]}, outside the model's vocabulary (vocab_size ${vocabSize})`);
    }
  }
}

/**
 * Runs the windows through the engine, several per step when they fit in `stepTokens`
 * (chunks of min(context, stepTokens) tokens each), asking for the logits of every row.
 */
export async function perplexity(engine: Engine, ids: readonly number[], opts: PerplexityOptions): Promise<PerplexityResult> {
  const { context, stepTokens } = opts;
  if (!Number.isInteger(context) || context < 2) throw new RangeError(`perplexity: context must be an integer >= 2, got ${context}`);
  if (!Number.isInteger(stepTokens) || stepTokens < 1) throw new RangeError(`perplexity: stepTokens must be an integer >= 1, got ${stepTokens}`);
  checkIdsInVocab(ids, engine.config.vocabSize, 'held-out text');
  const windows = windowsOf(ids.length, context);
  if (windows.length === 0) throw new RangeError(`perplexity: the held-out text has ${ids.length} token(s); at least 2 are needed`);
  const t0 = performance.now();
  const V = engine.config.vocabSize;
  const chunk = Math.min(context, stepTokens);
  const perStep = Math.max(1, Math.floor(stepTokens / chunk));
  const total = windows[windows.length - 1].end;
  let done = 0;
  let nll = 0;
  let scored = 0;
  for (let g = 0; g < windows.length; g += perStep) {
    const group = windows.slice(g, g + perStep);
    const seqs = group.map(() => engine.addSequence());
    try {
      const offset = group.map(() => 0);
      for (;;) {
        const live = group.map((_, i) => i).filter((i) => group[i].start + offset[i] < group[i].end);
        if (live.length === 0) break;
        const entries = live.map((i) => {
          const from = group[i].start + offset[i];
          return { seq: seqs[i], tokens: ids.slice(from, Math.min(group[i].end, from + chunk)), logits: 'all' as const };
        });
        const logits = await engine.step(entries);
        live.forEach((i, j) => {
          const w = group[i];
          const k = entries[j].tokens.length;
          for (let r = 0; r < k; r++) {
            const p = w.start + offset[i] + r; // the row's position in the stream
            if (p + 1 >= w.end) break; // a window's last row predicts outside it
            nll += tokenNll(logits[j].subarray(r * V, (r + 1) * V), ids[p + 1]);
            scored++;
          }
          offset[i] += k;
          done += k;
        });
        opts.onProgress?.(done, total);
      }
    } finally {
      for (const s of seqs) engine.releaseSequence(s);
    }
  }
  const meanNll = nll / scored;
  return { tokens: total, windows: windows.length, context, scoredTokens: scored, meanNll, ppl: Math.exp(meanNll), seconds: (performance.now() - t0) / 1000 };
}
