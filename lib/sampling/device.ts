/**
 * Sampling on the device: what one logits row's policy looks like to Backend::sample (the
 * parameters, this step's uniform and the penalty pairs), and its packing into the flat arrays
 * the native step takes. The device applies the same rule as CpuReducer (reduce.ts), so a
 * sequence yields the same tokens for the same seed on either path.
 */
import type { ReduceSpec } from './reduce.js';

export interface DeviceSampling extends ReduceSpec {
  readonly repetitionPenalty: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  /** Distinct (token id, output count) pairs, interleaved, that the penalties act on. */
  readonly penalties: Int32Array;
}

/** A row whose token nobody reads (an entry that is not sampled this step): greedy, nothing else. */
export const UNREAD_ROW: DeviceSampling = {
  temperature: 0,
  topK: 0,
  topP: 1,
  minP: 0,
  uniform: 0,
  logprobs: false,
  topLogprobs: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penalties: new Int32Array(0),
};

/**
 * Doubles per row of the packed parameters, in the order bindings/native_model.cc reads them:
 * uniform, temperature, topK, topP, minP, repetition, presence, frequency, logprobs (0/1),
 * topLogprobs.
 */
export const SAMPLE_PARAMS_PER_ROW = 10;

export interface PackedSampling {
  readonly params: Float64Array;
  /** Every row's penalty pairs, concatenated. */
  readonly penalties: Int32Array;
  /** Row r's pairs are penalties[2 × penaltyOffsets[r], 2 × penaltyOffsets[r + 1]). */
  readonly penaltyOffsets: Int32Array;
}

export function packSampling(rows: readonly DeviceSampling[]): PackedSampling {
  const params = new Float64Array(rows.length * SAMPLE_PARAMS_PER_ROW);
  const penaltyOffsets = new Int32Array(rows.length + 1);
  let pairs = 0;
  rows.forEach((r, i) => {
    if (r.penalties.length % 2 !== 0) throw new RangeError(`sampling row ${i}: penalties must hold (token id, count) pairs, got ${r.penalties.length} ints`);
    penaltyOffsets[i] = pairs;
    pairs += r.penalties.length / 2;
    params.set(
      [r.uniform, r.temperature, r.topK, r.topP, r.minP, r.repetitionPenalty, r.presencePenalty, r.frequencyPenalty, r.logprobs ? 1 : 0, r.topLogprobs],
      i * SAMPLE_PARAMS_PER_ROW,
    );
  });
  penaltyOffsets[rows.length] = pairs;
  const penalties = new Int32Array(2 * pairs);
  rows.forEach((r, i) => penalties.set(r.penalties, 2 * penaltyOffsets[i]));
  return { params, penalties, penaltyOffsets };
}
