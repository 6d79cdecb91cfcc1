/**
 * Logits processors: cheap, sparse edits of a logits row that depend on the sequence's
 * history (penalties). They touch only the tokens seen so far, so on a device they are a
 * small scatter: the history is kept as a compact list of (token id, output count) pairs that
 * changes by one token per step, which the device path uploads as it is (Backend::sample
 * applies the same fp32 steps, see weights.ts penalisedLogit). The vocab-wide reductions
 * (max, softmax, top-k/top-p/min-p, the draw) are in reduce.ts.
 */
import { penalisedLogit } from './weights.js';

const f = Math.fround;

/**
 * The tokens a sequence has seen, as distinct (token id, output count) pairs: the prompt's
 * tokens (count 0 until generated) then each newly generated token, in first-seen order.
 */
export class TokenHistory {
  private readonly slot = new Map<number, number>();
  private buf = new Int32Array(32);
  private n = 0;
  private generated = 0;

  constructor(promptIds: Iterable<number> = []) {
    for (const t of promptIds) if (!this.slot.has(t)) this.add(t, 0);
  }

  push(token: number): void {
    const s = this.slot.get(token);
    if (s === undefined) this.add(token, 1);
    else this.buf[2 * s + 1]++;
    this.generated++;
  }

  /** How many times `token` was generated. */
  count(token: number): number {
    const s = this.slot.get(token);
    return s === undefined ? 0 : this.buf[2 * s + 1];
  }

  /** Distinct tokens seen (prompt and output). */
  get size(): number {
    return this.n;
  }

  get outputLength(): number {
    return this.generated;
  }

  /** The (token id, output count) pairs, interleaved; a view, valid until the next push. */
  pairs(): Int32Array {
    return this.buf.subarray(0, 2 * this.n);
  }

  private add(token: number, count: number): void {
    if (2 * this.n + 2 > this.buf.length) {
      const grown = new Int32Array(this.buf.length * 2);
      grown.set(this.buf);
      this.buf = grown;
    }
    this.slot.set(token, this.n);
    this.buf[2 * this.n] = token;
    this.buf[2 * this.n + 1] = count;
    this.n++;
  }
}

/** The penalties of one policy, in fp32 as the device reads them (1, 0, 0 = off). */
export interface Penalties {
  readonly repetition: number;
  readonly presence: number;
  readonly frequency: number;
}

/** The fp32 penalties of the parameters, or undefined when they leave every logit as it is. */
export function penaltiesOf(p: { repetitionPenalty: number; presencePenalty: number; frequencyPenalty: number }): Penalties | undefined {
  const pen = { repetition: f(p.repetitionPenalty), presence: f(p.presencePenalty), frequency: f(p.frequencyPenalty) };
  return pen.repetition === 1 && pen.presence === 0 && pen.frequency === 0 ? undefined : pen;
}

/**
 * Applies the penalties to `row` in place over the history's tokens (ids >= row.length are
 * skipped): HF's repetition penalty on every distinct token of prompt + output (positive
 * logits ÷ penalty, negative × penalty, once per token however often it occurred), then
 * OpenAI's presence and frequency penalties on the generated ones:
 * logit -= count × frequency + presence.
 */
export function applyPenalties(row: Float32Array, h: TokenHistory, pen: Penalties): void {
  const pairs = h.pairs();
  for (let j = 0; j < pairs.length; j += 2) {
    const t = pairs[j];
    if (t < row.length) row[t] = penalisedLogit(row[t], pairs[j + 1], pen.repetition, pen.presence, pen.frequency);
  }
}
