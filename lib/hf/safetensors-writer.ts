/**
 * Our own safetensors writer: an 8-byte little-endian header length, the JSON header (tensors
 * in the given order, offsets back to back, padded with spaces to an 8-byte boundary as the
 * reference implementation pads), then the tensors' bytes. Tensors are produced and written
 * one at a time, so a checkpoint is never held whole in memory; the file appears under its
 * name only once complete (written beside it, then renamed).
 */
import { open, rename, rm } from 'node:fs/promises';
import { f32ToBf16 } from '../model/bf16.js';
import { f32ToF16Value } from './convert.js';
import { DTYPE_BYTES, type SafetensorsDtype } from './safetensors-header.js';

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The stored bytes (little-endian); called once, when the tensor's turn comes. */
  readonly bytes: () => Uint8Array | Promise<Uint8Array>;
}

const byteLength = (t: TensorToWrite): number => t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];

/** The header bytes (length prefix included) for tensors written in this order. */
export function safetensorsHeader(tensors: readonly TensorToWrite[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw new Error(`safetensors writer: tensor name '${t.name}' is given twice or reserved`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`safetensors writer: tensor '${t.name}' has shape [${t.shape.join(', ')}]`);
    const n = byteLength(t);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

/** Writes a safetensors file; on any error nothing is left at `path`. */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Readonly<Record<string, string>> = { format: 'pt' }): Promise<void> {
  const header = safetensorsHeader(tensors, metadata);
  const tmp = `${path}.partial`;
  const handle = await open(tmp, 'w');
  try {
    let position = 0;
    const write = async (b: Uint8Array) => {
      for (let done = 0; done < b.length; ) {
        const { bytesWritten } = await handle.write(b, done, b.length - done, position + done);
        done += bytesWritten;
      }
      position += b.length;
    };
    await write(header);
    for (const t of tensors) {
      const b = await t.bytes();
      if (b.length !== byteLength(t)) {
        throw new Error(`safetensors writer: tensor '${t.name}' (${t.dtype} [${t.shape.join(', ')}]) got ${b.length} bytes, expected ${byteLength(t)}`);
      }
      await write(b);
    }
    await handle.close();
    await rename(tmp, path);
  } catch (e) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
}

/** The f16 bits of the f16 value nearest to x (ties to even). */
export function f16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(f32ToF16Value(x));
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24); // subnormal (exact: a is an f16 value)
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

/** Values stored as `dtype` (F32, BF16 or F16), little-endian bytes. */
export function encodeTensor(values: ArrayLike<number>, dtype: SafetensorsDtype): Uint8Array {
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  let out: Float32Array | Uint16Array;
  if (dtype === 'F32') out = f32;
  else if (dtype === 'BF16') out = f32ToBf16(f32);
  else if (dtype === 'F16') out = Uint16Array.from(f32, f16Bits);
  else throw new Error(`safetensors writer: cannot encode values as ${dtype}`);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
