/**
 * The arithmetic of the sampling rule (see reduce.ts), written so that this file, the CPU twin
 * and the CUDA kernel (native/common/sample_math.h holds the C++ of both) compute bit-identical
 * numbers: every step is one IEEE fp32 operation (+, -, ×, ÷, rounded to nearest; here
 * Math.fround of the double result, which rounds the same way) or an exact one (floor, scaling
 * by a power of two, integer sums below 2^53). Nothing goes through a library exp/log.
 */

const f = Math.fround;

export const LOG2E = f(Math.LOG2E);
/** ln 2 split so that k × LN2_HI is exact for |k| < 2^15 (Cody–Waite). */
export const LN2_HI = 0.693359375;
export const LN2_LO = f(-2.12194440e-4);
/** Taylor coefficients 1/7! … 1/2! of exp on [-ln2/2, ln2/2] (then 1, 1), in fp32. */
const C7 = f(1 / 5040);
const C6 = f(1 / 720);
const C5 = f(1 / 120);
const C4 = f(1 / 24);
const C3 = f(1 / 6);
/** 2^k for k in [-126, 0], at index k + 126. */
const POW2 = Float64Array.from({ length: 127 }, (_, i) => 2 ** (i - 126));

/** Integer weights are floor(w × 2^31): the maximum weighs exactly 2^31. */
export const WEIGHT_SCALE = 2 ** 31;
/** Largest vocabulary whose integer masses stay exact in a double (V × 2^31 < 2^53). */
export const MAX_SAMPLING_VOCAB = 2 ** 22;

/** 1 / T in fp32 (T > 0 in fp32; Infinity when T is subnormal). */
export function invTemperature(temperatureF32: number): number {
  return f(1 / temperatureF32);
}

/** s = (y - m) × invT in fp32, exactly 0 at the maximum (also when invT is infinite). */
export function scaledLogit(y: number, m: number, invT: number): number {
  const d = f(y - m);
  return d === 0 ? 0 : f(d * invT);
}

/**
 * exp(s) for s <= 0, in fp32 (within 2 ulp of the true value): 0 below -87 (and for -inf or
 * NaN), exactly 1 at 0. Not monotone at the ulp level; the rule never assumes it is.
 */
export function expWeight(s: number): number {
  if (!(s >= -87)) return 0;
  const k = Math.floor(f(f(s * LOG2E) + 0.5)); // in [-126, 0]
  const r = f(f(s - k * LN2_HI) - f(k * LN2_LO)); // k × LN2_HI is exact (17 bits)
  let p = f(f(C7 * r) + C6);
  p = f(f(p * r) + C5);
  p = f(f(p * r) + C4);
  p = f(f(p * r) + C3);
  p = f(f(p * r) + 0.5);
  p = f(f(p * r) + 1);
  p = f(f(p * r) + 1);
  return f(p * POW2[k + 126]); // exact unless the result is subnormal (k = -126)
}

/** The integer weight of a token: floor(w × 2^31), in [0, 2^31]. */
export function integerWeight(w: number): number {
  return Math.floor(w * WEIGHT_SCALE);
}

/**
 * The penalised logit of a token of the history seen `count` times in the output, with the
 * penalties already rounded to fp32: repetition first (HF), then presence and frequency (OpenAI).
 */
export function penalisedLogit(x: number, count: number, repetition: number, presence: number, frequency: number): number {
  let v = x;
  if (repetition !== 1) v = v < 0 ? f(v * repetition) : f(v / repetition);
  if (count > 0 && (presence !== 0 || frequency !== 0)) v = f(v - f(f(count * frequency) + presence));
  return v;
}
