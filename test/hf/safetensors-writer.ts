/**
 * A hand-written safetensors writer for tests (independent of lib/hf): header JSON padded with
 * spaces to 8-byte alignment, then the tensors' bytes back to back. `rawFile` builds files
 * with any header text and data, for the corrupt-input tests.
 */
import { writeFileSync } from 'node:fs';

export type StDtype = 'F32' | 'F16' | 'BF16' | 'I64' | 'F64' | 'U8';

export interface StTensor {
  readonly name: string;
  readonly dtype: StDtype;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** A file from header text and data bytes, with the 8-byte little-endian length in front. */
export function rawFile(headerText: string | Uint8Array, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const header = typeof headerText === 'string' ? new TextEncoder().encode(headerText) : headerText;
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/** The bytes of a well-formed safetensors file holding `tensors` in order. */
export function safetensorsBytes(tensors: readonly StTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((8 + text.length) % 8)) % 8);
  const data = new Uint8Array(offset);
  let o = 0;
  for (const t of tensors) {
    data.set(t.bytes, o);
    o += t.bytes.length;
  }
  return rawFile(text, data);
}

export function writeSafetensors(path: string, tensors: readonly StTensor[], metadata?: Record<string, string>): void {
  writeFileSync(path, safetensorsBytes(tensors, metadata));
}
