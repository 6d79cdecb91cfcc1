/**
 * From generate()'s input and options to what the scheduler runs: prompt ids, sampling
 * parameters with the model's defaults, stop ids, and maxTokens fitted to the KV pool.
 */
import { formatBytes } from '../kv/bytes.js';
import type { KvLayout } from '../kv/layout.js';
import { pagesPerSequence } from '../kv/memory-model.js';
import type { GenerationDefaults } from '../hf/index.js';
import { resolveSamplingParams, type ResolvedSamplingParams, type SamplingParams } from '../sampling/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { GenerateInput, GenerateOptions } from './types.js';

/** Token ids of the input; messages go through the chat template with the generation prompt. */
export function promptIds(input: GenerateInput, tokenizer: Tokenizer | undefined, vocabSize: number, opts: GenerateOptions): number[] {
  let ids: number[];
  if (typeof input === 'string' || Array.isArray(input)) {
    if (!tokenizer) {
      throw new Error('generate: this model has no tokenizer (tokenizer.json); give the prompt as { promptIds: [...] }');
    }
    ids = typeof input === 'string'
      ? tokenizer.encode(input, { addSpecialTokens: true })
      : tokenizer.encodeChat(input, { ...opts.chatTemplateOptions, addGenerationPrompt: true });
  } else if (input !== null && typeof input === 'object' && 'promptIds' in input && Array.isArray(input.promptIds)) {
    ids = [...input.promptIds];
    ids.forEach((t, i) => {
      if (!Number.isSafeInteger(t) || t < 0 || t >= vocabSize) {
        throw new RangeError(`generate: promptIds[${i}] must be a token id in [0, ${vocabSize}), got ${String(t)}`);
      }
    });
  } else {
    throw new TypeError('generate: input must be a string, an array of chat messages, or { promptIds: number[] }');
  }
  if (ids.length === 0) throw new RangeError('generate: the prompt is empty (no tokens)');
  return ids;
}

/**
 * The model's sampling defaults, as HF generate() reads generation_config.json: it samples
 * only when do_sample is true (then temperature, top_k (HF's default 50), top_p, min_p
 * apply); otherwise it decodes greedily. repetition_penalty and max_new_tokens apply either way.
 */
export function modelSamplingDefaults(g: GenerationDefaults | undefined): SamplingParams {
  if (!g) return {};
  const out: { -readonly [K in keyof SamplingParams]: SamplingParams[K] } = {};
  if (g.doSample === true) {
    out.temperature = g.temperature ?? 1;
    out.topK = g.topK ?? 50;
    if (g.topP !== undefined) out.topP = g.topP;
    if (g.minP !== undefined) out.minP = g.minP;
  } else {
    out.temperature = 0;
  }
  if (g.repetitionPenalty !== undefined) out.repetitionPenalty = g.repetitionPenalty;
  if (g.maxNewTokens !== undefined) out.maxTokens = g.maxNewTokens;
  return out;
}

export function resolveParams(opts: GenerateOptions, defaults: SamplingParams, vocabSize: number, hasTokenizer: boolean): ResolvedSamplingParams {
  const { signal: _s, skipSpecialTokens: _k, chatTemplateOptions: _c, ...sampling } = opts;
  const p = resolveSamplingParams(sampling, defaults, vocabSize);
  if (p.stop.length > 0 && !hasTokenizer) throw new RangeError('generate: stop strings need a tokenizer; this model has none (use stopTokenIds)');
  return p;
}

export function stopIds(p: ResolvedSamplingParams, eos: Iterable<number>): Set<number> {
  const ids = new Set<number>(p.stopTokenIds);
  if (!p.ignoreEos) for (const t of eos) ids.add(t);
  return ids;
}

/**
 * maxTokens lowered, if needed, so that prompt + output fits the KV pool on its own, and the
 * pages that takes at its peak. Throws when even the prompt does not fit. Growth token by
 * token is the measure: a request alone in a tight pool has its prefill chunks shortened by
 * the scheduler until they fit, so every position it writes needs at most what one decode
 * step there needs. Beside other requests the scheduler admits by the next step's pages and
 * preempts the newest when the pool runs short, so a request that fits alone always finishes.
 */
export function fitToKv(
  layout: KvLayout,
  numPages: number,
  promptLen: number,
  maxTokens: number,
): { maxTokens: number; pages: number } {
  // n generated tokens write promptLen + n - 1 positions (the last one is never fed back).
  const pagesFor = (n: number) => pagesPerSequence(layout, promptLen + n - 1, 1);
  const need = pagesFor(1);
  if (need > numPages) {
    throw new RangeError(
      `generate: the prompt (${promptLen} tokens) needs ${need} KV pages (${formatBytes(need * layout.pageBytes)}) ` +
        `but the KV pool holds ${numPages} (${formatBytes(numPages * layout.pageBytes)}); raise kvBudgetBytes or shorten the prompt`,
    );
  }
  if (pagesFor(maxTokens) <= numPages) return { maxTokens, pages: pagesFor(maxTokens) };
  let lo = 1; // fits
  let hi = maxTokens; // does not fit
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (pagesFor(mid) <= numPages) lo = mid;
    else hi = mid;
  }
  return { maxTokens: lo, pages: pagesFor(lo) };
}
