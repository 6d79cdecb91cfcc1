/**
 * The safetensors header, validated before anything in it is trusted
 * (format: https://huggingface.co/docs/safetensors — 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON, then the data section; offsets are relative to the data section).
 */
import { ModelLoadError, shown } from './errors.js';
import { isObject } from './config-fields.js';

/** The same bound as the reference implementation (safetensors' MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Byte sizes of the dtypes the format defines (sub-byte types are not supported). */
export const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** The dtypes the loaders can turn into engine weights. */
export const LOADABLE_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The file that holds it. */
  readonly file: string;
  /** Absolute offset of its first byte in `file`. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  /** Where the data section starts (8 + N). */
  readonly dataStart: number;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** The header length N from the first 8 bytes, checked against the bound and the file size. */
export function headerLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new ModelLoadError({ file }, `is ${fileSize} bytes long, too short for a safetensors header (truncated or not a safetensors file)`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelLoadError({ file }, `safetensors header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  }
  if (n > BigInt(fileSize - 8)) {
    throw new ModelLoadError({ file }, `safetensors header length ${n} exceeds the ${fileSize - 8} bytes after the length field (truncated or corrupt file)`);
  }
  return Number(n);
}

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** One tensor entry, checked on its own (offsets against the data section size). */
function parseEntry(file: string, name: string, e: unknown, dataStart: number, dataLength: number): TensorInfo {
  const fail = (detail: string): never => {
    throw new ModelLoadError({ file, tensor: name }, `tensor '${name}' ${detail}`);
  };
  if (!isObject(e)) return fail(`has a header entry that is not an object (${shown(e)})`);
  const { dtype, shape, data_offsets: offs } = e;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    return fail(`has unknown dtype ${shown(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    return fail(`has shape ${shown(shape)}; expected an array of non-negative integers`);
  }
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isIndex)) {
    return fail(`has data_offsets ${shown(offs)}; expected [begin, end] of non-negative integers`);
  }
  const [begin, end] = offs as [number, number];
  if (begin > end) fail(`has data_offsets [${begin}, ${end}] with begin > end`);
  if (end > dataLength) {
    fail(`has data_offsets [${begin}, ${end}] outside the ${dataLength}-byte data section (truncated or corrupt file)`);
  }
  const elems = (shape as number[]).reduce((a, b) => a * b, 1);
  const want = elems * DTYPE_BYTES[dtype as SafetensorsDtype];
  if (!Number.isSafeInteger(want) || want !== end - begin) {
    fail(`is ${dtype} ${shown(shape)} (${want} bytes) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
  }
  return {
    name,
    dtype: dtype as SafetensorsDtype,
    shape: [...(shape as number[])],
    file,
    byteOffset: dataStart + begin,
    byteLength: end - begin,
  };
}

/**
 * Parses and validates the JSON header bytes (`json`, N bytes) of a file of `fileSize` bytes.
 * Checks: UTF-8, a JSON object, `__metadata__` a string map, every entry well-formed and
 * inside the data section, shape × dtype size = byte range, no two tensors overlapping.
 */
export function parseHeader(file: string, json: Uint8Array, fileSize: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw new ModelLoadError({ file }, 'safetensors header is not valid UTF-8 (corrupt file)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError({ file }, `safetensors header is not valid JSON (${(e as Error).message}); corrupt or not a safetensors file`);
  }
  if (!isObject(parsed)) throw new ModelLoadError({ file }, 'safetensors header is not a JSON object');
  const dataStart = 8 + json.length;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
        throw new ModelLoadError({ file, field: '__metadata__' }, `safetensors __metadata__ must map strings to strings (got ${shown(entry)})`);
      }
      Object.assign(metadata, entry);
      continue;
    }
    tensors.push(parseEntry(file, name, entry, dataStart, dataLength));
  }
  // Overlaps: sorted by start, each non-empty tensor must begin at or after the furthest end
  // reached so far (empty tensors occupy no bytes).
  const sorted = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.byteOffset - b.byteOffset);
  let reach: TensorInfo | undefined;
  for (const cur of sorted) {
    if (reach && cur.byteOffset < reach.byteOffset + reach.byteLength) {
      throw new ModelLoadError(
        { file, tensor: cur.name },
        `tensor '${cur.name}' overlaps tensor '${reach.name}' in the data section (corrupt header)`,
      );
    }
    if (!reach || cur.byteOffset + cur.byteLength > reach.byteOffset + reach.byteLength) reach = cur;
  }
  return { file, dataStart, tensors, metadata };
}
