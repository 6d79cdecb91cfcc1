/** The fp32 arithmetic of the sampling rule (lib/sampling/weights.ts). */
import { describe, expect, it } from 'vitest';
import { expWeight, integerWeight, penalisedLogit, scaledLogit, WEIGHT_SCALE } from '../../lib/sampling/weights.js';

const isF32 = (x: number) => Math.fround(x) === x;

describe('sampling weights', () => {
  it('expWeight: fp32 values within 2 ulp of exp over [-87, 0], exactly 1 at 0, 0 below -87', () => {
    let worst = 0;
    for (let i = 0; i <= 200_000; i++) {
      const s = Math.fround(-87 * (i / 200_000) ** 0.7);
      const w = expWeight(s);
      expect(isF32(w)).toBe(true);
      const e = Math.exp(s);
      const ulp = 2 ** (Math.floor(Math.log2(e)) - 23);
      worst = Math.max(worst, Math.abs(w - e) / ulp);
    }
    expect(worst).toBeLessThanOrEqual(2);
    expect(expWeight(0)).toBe(1);
    expect(integerWeight(expWeight(0))).toBe(WEIGHT_SCALE);
    for (const s of [-87.0001, -100, -Infinity, NaN]) expect(expWeight(s)).toBe(0);
    // the bottom of the range scales by 2^-126 and may round to a subnormal fp32
    for (const s of [-87, Math.fround(-86.99999), -86.5]) {
      const w = expWeight(s);
      expect(w > 0 && isF32(w)).toBe(true);
      expect(Math.abs(w / Math.exp(s) - 1)).toBeLessThan(1e-5);
    }
  });

  it('scaledLogit is 0 at the maximum whatever the temperature, fp32 elsewhere', () => {
    expect(scaledLogit(3.5, 3.5, Infinity)).toBe(0);
    expect(Object.is(scaledLogit(-0, 0, 2), 0)).toBe(true);
    expect(scaledLogit(1, 3.5, Infinity)).toBe(-Infinity);
    expect(scaledLogit(Math.fround(0.1), 3.5, Math.fround(1 / 0.7))).toBe(Math.fround(Math.fround(Math.fround(0.1) - 3.5) * Math.fround(1 / 0.7)));
  });

  it('penalisedLogit: repetition by sign, then count × frequency + presence, in fp32 steps', () => {
    const f = Math.fround;
    expect(penalisedLogit(2, 0, f(1.5), 0, 0)).toBe(f(2 / f(1.5)));
    expect(penalisedLogit(-2, 0, f(1.5), 0, 0)).toBe(f(-2 * f(1.5)));
    expect(penalisedLogit(2, 3, 1, f(0.5), f(0.3))).toBe(f(2 - f(f(3 * f(0.3)) + f(0.5))));
    // presence and frequency leave tokens that were never generated alone
    expect(penalisedLogit(2, 0, 1, f(0.5), f(0.3))).toBe(2);
  });
});
