import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, bf16ToF32, f32ToBf16, f32ToBf16Bits, roundToBf16 } from '../../lib/model/bf16.js';
import { Prng } from '../../lib/model/prng.js';

/** The f32 with the given bit pattern. */
const fromBits = (bits: number): number => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0];
const bitsOf = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];
const bf16 = (bitsList: number[]): number[] => Array.from(f32ToBf16(new Float32Array(bitsList.map(fromBits))));

describe('bf16', () => {
  it('round-trips values that bf16 represents exactly, signed zeros and infinities included', () => {
    const exact = [0, -0, 1, -2, 0.5, 3.140625, 2 ** 100, -(2 ** -100), 2 ** -133, Infinity, -Infinity, 65280];
    const back = bf16ToF32(f32ToBf16(new Float32Array(exact)));
    expect(Array.from(back)).toEqual(exact);
    expect(Object.is(back[1], -0)).toBe(true);
  });

  it('rounds to nearest, ties to even', () => {
    expect(bf16([0x3f808000])).toEqual([0x3f80]); // 1 + 2^-8: tie, lower is even
    expect(bf16([0x3f818000])).toEqual([0x3f82]); // tie, upper is even
    expect(bf16([0x3f808001])).toEqual([0x3f81]); // just above the tie
    expect(bf16([0x3f807fff])).toEqual([0x3f80]); // just below the tie
    expect(bf16([0xbf818000])).toEqual([0xbf82]); // negative tie
    expect(bf16([0x3f7fffff])).toEqual([0x3f80]); // carry into the exponent
    expect(bf16([0x7f7fffff])).toEqual([0x7f80]); // f32 max overflows to +Inf
    expect(bf16([0x00008000, 0x00018000])).toEqual([0x0000, 0x0002]); // subnormal ties
  });

  it('keeps NaN a NaN, with its sign, even when the payload lives only in the dropped bits', () => {
    const out = bf16([0x7fc00000, 0x7f800001, 0xff800001, 0x7fbfffff]);
    for (const b of out) expect(Number.isNaN(bf16BitsToF32(b))).toBe(true);
    expect(out[2] & 0x8000).toBe(0x8000);
    expect(out[0]).toBe(0x7fc0);
  });

  it('picks the nearer of the two neighbouring bf16 values for random f32 (checked against bit arithmetic)', () => {
    const p = new Prng(3);
    const n = 50_000;
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = fromBits(p.nextU32() & 0xff7fffff); // finite (exponent < 255)
    const out = f32ToBf16(src);
    for (let i = 0; i < n; i++) {
      const x = src[i];
      const down = bitsOf(x) >>> 16; // truncation, toward zero
      const up = down + 1; // away from zero
      const dDown = Math.abs(x - bf16BitsToF32(down));
      const dUp = Math.abs(x - bf16BitsToF32(up));
      const expected = dDown < dUp ? down : dUp < dDown ? up : down % 2 === 0 ? down : up;
      if (out[i] !== (expected & 0xffff)) expect([i, x, out[i]]).toEqual([i, x, expected]);
    }
  });

  it('has the same results in scalar, array and in-place forms', () => {
    const p = new Prng(5);
    const src = new Float32Array(1000).map(() => p.normal() * 1e3);
    const bits = f32ToBf16(src);
    const viaBits = bf16ToF32(bits);
    expect(Array.from(bits)).toEqual(Array.from(src, (x) => f32ToBf16Bits(x)));
    expect(Array.from(roundToBf16(src))).toEqual(Array.from(viaBits));
    const inPlace = src.slice();
    roundToBf16(inPlace, inPlace);
    expect(Array.from(inPlace)).toEqual(Array.from(viaBits));
    for (let i = 0; i < src.length; i++) expect(Math.abs(viaBits[i] - src[i])).toBeLessThanOrEqual(Math.abs(src[i]) * 2 ** -8);
  });

  it('works on subarray views and rejects mismatched lengths', () => {
    const buf = new Float32Array([9, 1.5, -3, 9]);
    const view = buf.subarray(1, 3);
    expect(Array.from(bf16ToF32(f32ToBf16(view)))).toEqual([1.5, -3]);
    expect(() => f32ToBf16(view, new Uint16Array(3))).toThrow(/length/);
    expect(() => bf16ToF32(new Uint16Array(2), new Float32Array(1))).toThrow(/length/);
  });
});
