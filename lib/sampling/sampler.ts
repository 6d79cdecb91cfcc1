/**
 * A Sampler turns one logits row per step into a token for one sequence: penalties in place
 * (undone before returning, so the caller's row is unchanged), then the reductions of a
 * RowReducer, with one uniform draw per step from a seeded PRNG (none when greedy).
 */
import { webcrypto } from 'node:crypto';
import { Prng } from '../model/prng.js';
import { resolveSamplingParams, type ResolvedSamplingParams, type SamplingParams } from './params.js';
import { penaltyProcessors, TokenHistory, type LogitsProcessor } from './processors.js';
import { CpuReducer, type RowReducer, type TokenLogprob } from './reduce.js';

export interface SampleResult {
  readonly token: number;
  /** The chosen token's logprob (see RowReducer for the distribution); present when params.logprobs. */
  readonly logprob?: number;
  /** Present when params.topLogprobs > 0. */
  readonly topLogprobs?: TokenLogprob[];
}

export interface SamplerOptions {
  readonly vocabSize: number;
  /** The prompt, for the repetition penalty. */
  readonly promptIds?: Iterable<number>;
  /** Shared by the samplers of one model (its scratch is reused; reduce() is synchronous). */
  readonly reducer?: RowReducer;
}

/** A fresh random seed when the caller gave none. */
export function randomSeed(): number {
  const [a, b] = webcrypto.getRandomValues(new Uint32Array(2));
  return (a & 0x1fffff) * 0x1_0000_0000 + b;
}

export class Sampler {
  readonly params: ResolvedSamplingParams;
  readonly history: TokenHistory;
  /** The seed in use (the given one, or the random one drawn). */
  readonly seed: number;
  private readonly rng: Prng;
  private readonly reducer: RowReducer;
  private readonly processors: readonly LogitsProcessor[];
  private readonly vocabSize: number;
  private saved: { ids: number[]; vals: number[] } = { ids: [], vals: [] };

  constructor(params: SamplingParams | ResolvedSamplingParams, opts: SamplerOptions) {
    this.params = resolveSamplingParams(params, {}, opts.vocabSize);
    this.vocabSize = opts.vocabSize;
    this.history = new TokenHistory(opts.promptIds);
    this.seed = this.params.seed ?? randomSeed();
    this.rng = new Prng(this.seed);
    this.reducer = opts.reducer ?? new CpuReducer(opts.vocabSize);
    this.processors = penaltyProcessors(this.params);
  }

  /** Picks the next token from `row` (vocab fp32 logits) and records it in the history. */
  sample(row: Float32Array): SampleResult {
    if (row.length !== this.vocabSize) throw new RangeError(`sampling: logits row has ${row.length} entries, expected vocabSize ${this.vocabSize}`);
    const p = this.params;
    if (this.processors.length > 0) this.save(row);
    try {
      for (const proc of this.processors) proc.process(row, this.history);
      const r = this.reducer.reduce(row, {
        temperature: p.temperature,
        topK: p.topK,
        topP: p.topP,
        minP: p.minP,
        uniform: p.temperature === 0 ? 0 : this.rng.uniform(),
        logprobs: p.logprobs,
        topLogprobs: p.topLogprobs,
      });
      this.history.push(r.token);
      return {
        token: r.token,
        ...(p.logprobs ? { logprob: r.logprob } : {}),
        ...(p.topLogprobs > 0 ? { topLogprobs: r.topLogprobs } : {}),
      };
    } finally {
      if (this.processors.length > 0) this.restore(row);
    }
  }

  /** Records the entries the penalties may touch (the history's tokens), to undo the edits. */
  private save(row: Float32Array): void {
    const ids: number[] = [];
    for (const t of this.history.prompt) if (t < row.length) ids.push(t);
    for (const t of this.history.output.keys()) if (t < row.length && !this.history.prompt.has(t)) ids.push(t);
    this.saved = { ids, vals: ids.map((t) => row[t]) };
  }

  private restore(row: Float32Array): void {
    const { ids, vals } = this.saved;
    for (let j = 0; j < ids.length; j++) row[ids[j]] = vals[j];
  }
}
