/**
 * Sampling parameters: what a caller may set, their neutral values, and validation that
 * names the offending parameter. Semantics follow HF transformers for the logits warpers
 * (temperature, top-k, top-p, min-p, repetition penalty) and OpenAI for presence/frequency.
 */

export interface SamplingParams {
  /** Softmax temperature; 0 = greedy (argmax). */
  readonly temperature?: number;
  /** Keep the k most likely tokens (ties with the k-th kept too); 0 = off. */
  readonly topK?: number;
  /** Keep the smallest most-likely set with mass >= topP (after top-k); 1 = off. */
  readonly topP?: number;
  /** Keep tokens with p >= minP · p_max; 0 = off. */
  readonly minP?: number;
  /** HF: logits of tokens seen in prompt + output: positive ÷ penalty, negative × penalty; 1 = off. */
  readonly repetitionPenalty?: number;
  /** OpenAI: subtract once from the logit of every token generated so far; 0 = off. */
  readonly presencePenalty?: number;
  /** OpenAI: subtract count × penalty from the logit of every generated token; 0 = off. */
  readonly frequencyPenalty?: number;
  /** Seed of the sampling PRNG (a non-negative safe integer); random when left out. */
  readonly seed?: number;
  /** Most tokens to generate. */
  readonly maxTokens?: number;
  /** Stop strings (OpenAI semantics: generation ends before the string, which is not output). */
  readonly stop?: readonly string[];
  /** Token ids that end generation (in addition to the model's EOS ids). */
  readonly stopTokenIds?: readonly number[];
  /** Keep generating past the model's EOS ids (stopTokenIds still stop). */
  readonly ignoreEos?: boolean;
  /** Report the chosen token's logprob with each token. */
  readonly logprobs?: boolean;
  /** Also report the n most likely tokens' logprobs (0–20). */
  readonly topLogprobs?: number;
}

/** Every field filled with its default (seed stays optional: undefined = random). */
export interface ResolvedSamplingParams {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly seed: number | undefined;
  readonly maxTokens: number;
  readonly stop: readonly string[];
  readonly stopTokenIds: readonly number[];
  readonly ignoreEos: boolean;
  readonly logprobs: boolean;
  readonly topLogprobs: number;
}

export const DEFAULT_MAX_TOKENS = 256;
export const MAX_TOP_LOGPROBS = 20;

export const NEUTRAL_SAMPLING: ResolvedSamplingParams = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: undefined,
  maxTokens: DEFAULT_MAX_TOKENS,
  stop: [],
  stopTokenIds: [],
  ignoreEos: false,
  logprobs: false,
  topLogprobs: 0,
};

export class SamplingParamError extends RangeError {
  override name = 'SamplingParamError';
  constructor(readonly param: string, message: string) {
    super(message);
  }
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function fail(param: string, rule: string, v: unknown): never {
  throw new SamplingParamError(param, `${param} must be ${rule}, got ${show(v)}`);
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/**
 * Throws a SamplingParamError naming the first invalid parameter. `vocabSize`, when given,
 * bounds stopTokenIds. Unknown keys are ignored (they may belong to the caller's options).
 */
export function validateSamplingParams(p: SamplingParams, vocabSize?: number): void {
  if (p === null || typeof p !== 'object') throw new SamplingParamError('params', `sampling params must be an object, got ${show(p)}`);
  const { temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty } = p;
  if (temperature !== undefined && !(isNum(temperature) && temperature >= 0)) fail('temperature', 'a finite number >= 0', temperature);
  if (topK !== undefined && !(isInt(topK) && topK >= 0)) fail('topK', 'an integer >= 0 (0 = off)', topK);
  if (topP !== undefined && !(isNum(topP) && topP > 0 && topP <= 1)) fail('topP', 'a number in (0, 1] (1 = off)', topP);
  if (minP !== undefined && !(isNum(minP) && minP >= 0 && minP <= 1)) fail('minP', 'a number in [0, 1] (0 = off)', minP);
  if (repetitionPenalty !== undefined && !(isNum(repetitionPenalty) && repetitionPenalty > 0)) {
    fail('repetitionPenalty', 'a finite number > 0 (1 = off)', repetitionPenalty);
  }
  if (presencePenalty !== undefined && !(isNum(presencePenalty) && Math.abs(presencePenalty) <= 2)) {
    fail('presencePenalty', 'a number in [-2, 2]', presencePenalty);
  }
  if (frequencyPenalty !== undefined && !(isNum(frequencyPenalty) && Math.abs(frequencyPenalty) <= 2)) {
    fail('frequencyPenalty', 'a number in [-2, 2]', frequencyPenalty);
  }
  if (p.seed !== undefined && !(isInt(p.seed) && p.seed >= 0)) fail('seed', 'a non-negative safe integer', p.seed);
  if (p.maxTokens !== undefined && !(isInt(p.maxTokens) && p.maxTokens >= 1)) fail('maxTokens', 'an integer >= 1', p.maxTokens);
  if (p.stop !== undefined) {
    if (!Array.isArray(p.stop)) fail('stop', 'an array of strings', p.stop);
    p.stop.forEach((s: unknown, i) => {
      if (typeof s !== 'string' || s.length === 0) fail(`stop[${i}]`, 'a non-empty string', s);
    });
  }
  if (p.stopTokenIds !== undefined) {
    if (!Array.isArray(p.stopTokenIds)) fail('stopTokenIds', 'an array of token ids', p.stopTokenIds);
    p.stopTokenIds.forEach((t: unknown, i) => {
      const ok = isInt(t) && t >= 0 && (vocabSize === undefined || t < vocabSize);
      if (!ok) fail(`stopTokenIds[${i}]`, vocabSize === undefined ? 'an integer >= 0' : `an integer in [0, ${vocabSize})`, t);
    });
  }
  if (p.ignoreEos !== undefined && typeof p.ignoreEos !== 'boolean') fail('ignoreEos', 'a boolean', p.ignoreEos);
  if (p.logprobs !== undefined && typeof p.logprobs !== 'boolean') fail('logprobs', 'a boolean', p.logprobs);
  const n = p.topLogprobs;
  if (n !== undefined && !(isInt(n) && n >= 0 && n <= MAX_TOP_LOGPROBS)) fail('topLogprobs', `an integer in [0, ${MAX_TOP_LOGPROBS}]`, n);
}

/** Validates, then fills defaults: the caller's values over `defaults` over the neutral values. */
export function resolveSamplingParams(
  p: SamplingParams,
  defaults: SamplingParams = {},
  vocabSize?: number,
): ResolvedSamplingParams {
  validateSamplingParams(p, vocabSize);
  validateSamplingParams(defaults, vocabSize);
  const pick = <K extends keyof SamplingParams>(k: K) => p[k] ?? defaults[k];
  const out: { -readonly [K in keyof ResolvedSamplingParams]: ResolvedSamplingParams[K] } = { ...NEUTRAL_SAMPLING };
  for (const k of Object.keys(NEUTRAL_SAMPLING) as (keyof SamplingParams)[]) {
    const v = pick(k);
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
