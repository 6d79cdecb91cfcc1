/**
 * bfloat16 conversions on whole arrays. A bf16 value is the upper 16 bits of an IEEE f32.
 * f32 → bf16 rounds to nearest, ties to even; overflow rounds to ±Inf as IEEE rounding does;
 * NaN stays NaN (sign and upper payload bits kept, quiet bit forced so a payload living only
 * in the dropped bits cannot turn into Inf). bf16 → f32 is exact.
 * Arrays are converted through a Uint32Array view of the f32 buffer: no per-element allocation.
 */

const scalarF32 = new Float32Array(1);
const scalarU32 = new Uint32Array(scalarF32.buffer);

const u32View = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** bf16 bits of an f32 bit pattern (RNE, NaN kept quiet). */
function roundBits(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bf16 bits of one number (rounded to f32 first). */
export function f32ToBf16Bits(x: number): number {
  scalarF32[0] = x;
  return roundBits(scalarU32[0]);
}

/** The f32 value (as a JS number) of bf16 bits. */
export function bf16BitsToF32(bits: number): number {
  scalarU32[0] = (bits & 0xffff) << 16;
  return scalarF32[0];
}

/** Rounds every element to bf16; writes into `dst` (allocated when absent) and returns it. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length !== src.length) throw new Error(`f32ToBf16: dst length ${dst.length} != src length ${src.length}`);
  const s = u32View(src);
  for (let i = 0; i < s.length; i++) dst[i] = roundBits(s[i]);
  return dst;
}

/** Widens bf16 bits to f32 exactly; writes into `dst` (allocated when absent) and returns it. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length !== src.length) throw new Error(`bf16ToF32: dst length ${dst.length} != src length ${src.length}`);
  const d = u32View(dst);
  for (let i = 0; i < src.length; i++) d[i] = src[i] << 16;
  return dst;
}

/**
 * The f32 values that `src` takes once stored as bf16 (round then widen); `dst` may be `src`
 * itself for an in-place rounding.
 */
export function roundToBf16(src: Float32Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length !== src.length) throw new Error(`roundToBf16: dst length ${dst.length} != src length ${src.length}`);
  const s = u32View(src);
  const d = u32View(dst);
  for (let i = 0; i < s.length; i++) d[i] = roundBits(s[i]) << 16;
  return dst;
}
