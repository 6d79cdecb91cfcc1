/**
 * A model against a reference (the uncompressed model it was made from, `eval --reference`):
 * both engines run the same held-out windows in lockstep and, per scored position, their
 * next-token distributions are compared on the host in float64 — KL(reference ‖ model), top-1
 * agreement, and each one's NLL. Only one step's logits are alive at a time.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { EvalInputError } from './inputs.js';
import type { OpenedModel } from './model.js';
import { scoreWindows, type PerplexityOptions, type PerplexityResult } from './perplexity.js';

export interface ReferenceComparison {
  /** The reference's label and directory. */
  readonly reference: string;
  readonly referenceDir: string;
  /** Positions compared: the scored rows of the held-out windows (as for perplexity). */
  readonly positions: number;
  /** Mean over positions of KL(reference ‖ model) of the next-token distributions, in nats. */
  readonly meanKl: number;
  /** Fraction of positions where both argmaxes are the same token. */
  readonly top1Agreement: number;
  /** The reference's held-out mean NLL and perplexity over the same windows. */
  readonly referenceMeanNll: number;
  readonly referencePpl: number;
  /** The reference's KV bytes per token (bf16, lib/kv) and the model's as a fraction of it. */
  readonly referenceKvBytesPerToken: number;
  readonly kvVsReference: number;
}

/** log softmax(row) in float64, into `out`. */
export function logSoftmax64(row: ArrayLike<number>, out: Float64Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}

/** KL(p ‖ q) = Σ p (log p − log q) from log-probabilities, in nats. */
export function klFromLogProbs(logP: Float64Array, logQ: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < logP.length; i++) kl += Math.exp(logP[i]) * (logP[i] - logQ[i]);
  return kl;
}

/** The first index of the largest value (as the engine's argmax picks it). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Sorted-key JSON text, so formatting and key order do not make two tokenizers differ. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

async function tokenizerJson(dir: string): Promise<string> {
  const file = join(dir, 'tokenizer.json');
  try {
    return canonicalJson(JSON.parse(await readFile(file, 'utf8')));
  } catch (e) {
    throw new EvalInputError(`${file}: cannot be read as JSON (${(e as Error).message})`);
  }
}

/**
 * The model must see the same token ids as the reference: same vocab_size and the same
 * tokenizer.json (as JSON, not byte for byte). Throws a one-line EvalInputError naming both.
 */
export async function checkSameTokenizer(model: OpenedModel, reference: OpenedModel): Promise<void> {
  const mv = model.modelDir.config.vocabSize;
  const rv = reference.modelDir.config.vocabSize;
  if (mv !== rv) {
    throw new EvalInputError(`--reference ${reference.dir}: vocab_size ${rv} differs from ${model.dir}'s ${mv} (the model and its reference must share the tokenizer)`);
  }
  if ((await tokenizerJson(model.dir)) !== (await tokenizerJson(reference.dir))) {
    throw new EvalInputError(`--reference ${reference.dir}: tokenizer.json differs from ${model.dir}'s (the model and its reference must share the tokenizer)`);
  }
}

export interface LockstepResult {
  /** The model's held-out perplexity (what `perplexity` alone would give). */
  readonly model: PerplexityResult;
  readonly reference: PerplexityResult;
  readonly meanKl: number;
  readonly top1Agreement: number;
}

/** Runs both engines over the same held-out windows and compares them position by position. */
export async function compareWithReference(model: Engine, reference: Engine, ids: readonly number[], opts: PerplexityOptions): Promise<LockstepResult> {
  const V = model.config.vocabSize;
  if (reference.config.vocabSize !== V) throw new RangeError(`compareWithReference: vocab sizes differ (model ${V}, reference ${reference.config.vocabSize})`);
  const logQ = new Float64Array(V);
  const logP = new Float64Array(V);
  let kl = 0;
  let agree = 0;
  let nllModel = 0;
  let nllRef = 0;
  const run = await scoreWindows([model, reference], ids, opts, ([m, r], target) => {
    logSoftmax64(m, logQ);
    logSoftmax64(r, logP);
    kl += klFromLogProbs(logP, logQ);
    if (argmax(m) === argmax(r)) agree++;
    nllModel -= logQ[target];
    nllRef -= logP[target];
  });
  const n = run.scoredTokens;
  const result = (nll: number): PerplexityResult => ({
    tokens: run.tokens,
    windows: run.windows,
    context: opts.context,
    scoredTokens: n,
    meanNll: nll / n,
    ppl: Math.exp(nll / n),
    seconds: run.seconds,
  });
  return { model: result(nllModel), reference: result(nllRef), meanKl: kl / n, top1Agreement: agree / n };
}
