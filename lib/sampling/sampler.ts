/**
 * A Sampler turns one logits row per step into a token for one sequence: penalties in place
 * (undone before returning, so the caller's row is unchanged), then the reductions of a
 * RowReducer, with one uniform draw per step from a seeded PRNG (none when greedy).
 *
 * The same policy can run on the device instead (deviceSampling() → Backend::sample →
 * accept()): the step's uniform comes from the same PRNG stream and the device applies the
 * same rule, so a seed yields the same tokens whichever path each step takes.
 */
import { webcrypto } from 'node:crypto';
import { Prng } from '../model/prng.js';
import type { DeviceSampling } from './device.js';
import { resolveSamplingParams, type ResolvedSamplingParams, type SamplingParams } from './params.js';
import { applyPenalties, penaltiesOf, TokenHistory, type Penalties } from './processors.js';
import { CpuReducer, type Reduced, type RowReducer, type TokenLogprob } from './reduce.js';

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

const NO_PAIRS = new Int32Array(0);

export class Sampler {
  readonly params: ResolvedSamplingParams;
  /** The tokens the penalties act on (the prompt only when the repetition penalty is on). */
  readonly history: TokenHistory;
  /** The seed in use (the given one, or the random one drawn). */
  readonly seed: number;
  private readonly rng: Prng;
  private readonly reducer: RowReducer;
  private readonly penalties: Penalties | undefined;
  private readonly vocabSize: number;
  private saved: { ids: number[]; vals: number[] } = { ids: [], vals: [] };

  constructor(params: SamplingParams | ResolvedSamplingParams, opts: SamplerOptions) {
    this.params = resolveSamplingParams(params, {}, opts.vocabSize);
    this.vocabSize = opts.vocabSize;
    this.penalties = penaltiesOf(this.params);
    const V = opts.vocabSize;
    const prompt = this.penalties && this.penalties.repetition !== 1 ? [...(opts.promptIds ?? [])].filter((t) => t >= 0 && t < V) : [];
    this.history = new TokenHistory(prompt);
    this.seed = this.params.seed ?? randomSeed();
    this.rng = new Prng(this.seed);
    this.reducer = opts.reducer ?? new CpuReducer(opts.vocabSize);
  }

  /** Picks the next token from `row` (vocab fp32 logits) and records it in the history. */
  sample(row: Float32Array): SampleResult {
    if (row.length !== this.vocabSize) throw new RangeError(`sampling: logits row has ${row.length} entries, expected vocabSize ${this.vocabSize}`);
    const pen = this.penalties;
    if (pen) this.save(row);
    let r: Reduced;
    try {
      if (pen) applyPenalties(row, this.history, pen);
      r = this.reducer.reduce(row, this.spec());
    } finally {
      if (pen) this.restore(row);
    }
    return this.accept(r);
  }

  /**
   * The next token's policy for Backend::sample: draws this step's uniform (as sample() would),
   * so call it once per token, then hand the device's result to accept(). The penalty pairs
   * are a view of the history, valid until accept().
   */
  deviceSampling(): DeviceSampling {
    const p = this.params;
    return {
      ...this.spec(),
      repetitionPenalty: p.repetitionPenalty,
      presencePenalty: p.presencePenalty,
      frequencyPenalty: p.frequencyPenalty,
      penalties: this.penalties ? this.history.pairs() : NO_PAIRS,
    };
  }

  /**
   * Records a token chosen from this sampler's spec (by the reducer or the device) and returns
   * it with the logprobs the parameters ask for. A negative token is the device's report of a
   * row without a finite maximum.
   */
  accept(r: Reduced): SampleResult {
    if (!(r.token >= 0 && r.token < this.vocabSize)) throw new RangeError('sampling: the logits have no finite maximum');
    const p = this.params;
    this.history.push(r.token);
    return {
      token: r.token,
      ...(p.logprobs ? { logprob: r.logprob } : {}),
      ...(p.topLogprobs > 0 ? { topLogprobs: r.topLogprobs } : {}),
    };
  }

  private spec() {
    const p = this.params;
    return {
      temperature: p.temperature,
      topK: p.topK,
      topP: p.topP,
      minP: p.minP,
      uniform: p.temperature === 0 ? 0 : this.rng.uniform(),
      logprobs: p.logprobs,
      topLogprobs: p.topLogprobs,
    };
  }

  /** Records the entries the penalties may touch (the history's tokens), to undo the edits. */
  private save(row: Float32Array): void {
    const pairs = this.history.pairs();
    const ids: number[] = [];
    for (let j = 0; j < pairs.length; j += 2) if (pairs[j] < row.length) ids.push(pairs[j]);
    this.saved = { ids, vals: ids.map((t) => row[t]) };
  }

  private restore(row: Float32Array): void {
    const { ids, vals } = this.saved;
    for (let j = 0; j < ids.length; j++) row[ids[j]] = vals[j];
  }
}
