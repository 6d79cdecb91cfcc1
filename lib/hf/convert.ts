/**
 * Conversions from stored safetensors bytes to what the engine takes. F32 and BF16 go through
 * as they are; F16 widens to F32 (exact); Gemma norms (stored as w − 1, applied as 1 + w) get
 * the +1 folded in, computed and kept in f32 as Gemma's RMSNorm computes it. Byte views
 * assume a little-endian host, as the safetensors format and the engine do.
 */
import type { NativeDType } from '../native.js';
import type { SafetensorsDtype } from './safetensors-header.js';

let f16Table: Float32Array | undefined;

/** f32 value of every f16 bit pattern (built once, 256 KiB). */
function f16Values(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (f16Table = t);
}

/** The nearest f16 value (ties to even) of x, as a number; for scalars such as Gemma's scale. */
export function f32ToF16Value(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity; // rounds past the largest f16, 65504
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const ulp = 2 ** (e - 10);
  const q = a / ulp;
  let r = Math.round(q);
  if (r - q === 0.5 && r % 2 === 1) r -= 1; // Math.round rounds halves up; f16 rounds them to even
  return Math.sign(x) * r * ulp;
}

const f32View = (b: Uint8Array): Float32Array => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
const u16View = (b: Uint8Array): Uint16Array => new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);

/** The stored values as f32 (a view for F32, a new array otherwise). */
export function toF32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case 'F32':
      return f32View(bytes);
    case 'BF16': {
      const src = u16View(bytes);
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'F16': {
      const src = u16View(bytes);
      const table = f16Values();
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
      return out;
    }
    default:
      throw new Error(`toF32: dtype ${dtype} cannot be loaded`);
  }
}

export interface EngineBytes {
  readonly dtype: NativeDType;
  readonly bytes: Uint8Array;
}

/**
 * Engine storage for a stored tensor. `plusOne`: a Gemma norm, returned as f32(1 + w).
 * The input buffer is reused, and for an F32 norm modified in place: pass a fresh one.
 */
export function engineBytes(dtype: SafetensorsDtype, bytes: Uint8Array, plusOne: boolean): EngineBytes {
  if (!plusOne) {
    if (dtype === 'F32') return { dtype: 'f32', bytes };
    if (dtype === 'BF16') return { dtype: 'bf16', bytes };
  }
  const v = toF32(dtype, bytes); // for F32 a view: the fresh buffer is folded in place
  if (plusOne) for (let i = 0; i < v.length; i++) v[i] = v[i] + 1; // f32 add: the sum rounds once
  return { dtype: 'f32', bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
}
