/**
 * Our own safetensors reader: single files and sharded checkpoints
 * (`model.safetensors.index.json`). Headers are validated before use (safetensors-header.ts);
 * tensors are read on demand with positioned reads into a fresh buffer each, so a file is
 * never held whole in memory.
 */
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { existsSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError, shown } from './errors.js';
import { isObject } from './config-fields.js';
import { headerLength, parseHeader, type SafetensorsHeader, type TensorInfo } from './safetensors-header.js';

export { DTYPE_BYTES, LOADABLE_DTYPES, MAX_HEADER_BYTES, parseHeader } from './safetensors-header.js';
export type { SafetensorsDtype, SafetensorsHeader, TensorInfo } from './safetensors-header.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** Bytes per read call: below the 2 GiB that one read(2) may move. */
const CHUNK = 1 << 30;

async function readFully(handle: FileHandle, buf: Uint8Array, position: number, file: string, what: string, tensor?: string): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesRead } = await handle.read(buf, done, Math.min(CHUNK, buf.length - done), position + done);
    if (bytesRead === 0) throw new ModelLoadError({ file, tensor }, `ended at byte ${position + done} while reading ${what} (file truncated or changed)`);
    done += bytesRead;
  }
}

function readFullySync(fd: number, buf: Uint8Array, position: number, file: string, what: string, tensor?: string): void {
  for (let done = 0; done < buf.length; ) {
    const n = readSync(fd, buf, done, Math.min(CHUNK, buf.length - done), position + done);
    if (n === 0) throw new ModelLoadError({ file, tensor }, `ended at byte ${position + done} while reading ${what} (file truncated or changed)`);
    done += n;
  }
}

/** An uninitialised buffer of its own (never a slice of Node's shared pool), as a plain Uint8Array. */
function fresh(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** Reads and validates the header of an open file. */
async function readHeader(file: string, handle: FileHandle): Promise<SafetensorsHeader> {
  const { size } = await handle.stat();
  const prefix = new Uint8Array(Math.min(8, size));
  await readFully(handle, prefix, 0, file, 'the header length');
  const n = headerLength(file, prefix, size);
  const json = new Uint8Array(n);
  await readFully(handle, json, 8, file, 'the header');
  return parseHeader(file, json, size);
}

/** The shard file names of an index, checked: a JSON object with a `weight_map` of plain file names. */
async function readIndex(indexPath: string): Promise<Map<string, string>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new ModelLoadError({ file: indexPath }, `is not valid JSON (${(e as Error).message})`);
  }
  const wm = isObject(parsed) ? parsed.weight_map : undefined;
  if (!isObject(wm)) throw new ModelLoadError({ file: indexPath, field: 'weight_map' }, "has no 'weight_map' object (tensor name → shard file)");
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string' || shard === '' || /[/\\]/.test(shard) || shard === '.' || shard === '..') {
      throw new ModelLoadError({ file: indexPath, tensor: name, field: 'weight_map' }, `weight_map entry for tensor '${name}' is ${shown(shard)}, not a file name in the model directory`);
    }
    map.set(name, shard);
  }
  return map;
}

/**
 * The file that says where a directory's weights are: the shard index when there is one, else
 * model.safetensors; an error naming the directory when neither exists.
 */
export function weightsFile(dir: string): string {
  for (const f of [INDEX_FILE, SINGLE_FILE]) if (existsSync(join(dir, f))) return join(dir, f);
  let others: string[] = [];
  try {
    others = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.bin') || f.endsWith('.gguf'));
  } catch {
    /* an unreadable directory: the plain message below */
  }
  const hint = others.length > 0 ? ` (found ${others.slice(0, 3).join(', ')}; expected HF safetensors names)` : '';
  throw new ModelLoadError({ file: dir }, `has no ${SINGLE_FILE} or ${INDEX_FILE}${hint}`);
}

export class Checkpoint {
  private closed = false;

  private constructor(
    /** What to name in messages about the checkpoint as a whole: the index file, or the one weight file. */
    readonly source: string,
    /** The weight files, in the order their tensors were listed. */
    readonly files: readonly string[],
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    /** Each file's `__metadata__`. */
    readonly metadata: ReadonlyMap<string, Readonly<Record<string, string>>>,
    private readonly handles: ReadonlyMap<string, FileHandle>,
  ) {}

  /**
   * Opens the weights of a model directory: `model.safetensors.index.json` and its shards when
   * the index exists, else `model.safetensors`. Validates every header, that each shard exists,
   * that each indexed tensor is in its shard and that no tensor is in two files.
   */
  static async open(dir: string): Promise<Checkpoint> {
    const indexPath = weightsFile(dir);
    if (indexPath.endsWith(INDEX_FILE)) {
      const index = await readIndex(indexPath);
      const shards = [...new Set(index.values())];
      for (const s of shards) {
        if (!existsSync(join(dir, s))) {
          const t = [...index].find(([, f]) => f === s)?.[0];
          throw new ModelLoadError({ file: indexPath, tensor: t }, `lists shard '${s}' (for tensor '${t}') but ${join(dir, s)} does not exist`);
        }
      }
      const cp = await Checkpoint.openFiles(shards.map((s) => join(dir, s)), indexPath);
      try {
        for (const [name, shard] of index) {
          const where = cp.tensors.get(name)?.file;
          if (where !== join(dir, shard)) {
            throw new ModelLoadError({ file: indexPath, tensor: name }, `maps tensor '${name}' to '${shard}' but ${where ? `it is in ${where}` : 'no shard holds it'}`);
          }
        }
      } catch (e) {
        await cp.close();
        throw e;
      }
      return cp;
    }
    return Checkpoint.openFiles([indexPath]);
  }

  /** Opens the given safetensors files as one checkpoint (no tensor may be in two of them). */
  static async openFiles(paths: readonly string[], source = paths.join(', ')): Promise<Checkpoint> {
    const handles = new Map<string, FileHandle>();
    const tensors = new Map<string, TensorInfo>();
    const metadata = new Map<string, Readonly<Record<string, string>>>();
    try {
      for (const file of paths) {
        if (!(await stat(file).catch(() => undefined))?.isFile()) throw new ModelLoadError({ file }, 'does not exist or is not a file');
        const handle = await open(file, 'r');
        handles.set(file, handle);
        const header = await readHeader(file, handle);
        metadata.set(file, header.metadata);
        for (const t of header.tensors) {
          const other = tensors.get(t.name);
          if (other) throw new ModelLoadError({ file, tensor: t.name }, `holds tensor '${t.name}', which ${other.file} holds too`);
          tensors.set(t.name, t);
        }
      }
    } catch (e) {
      await Promise.all([...handles.values()].map((h) => h.close()));
      throw e;
    }
    return new Checkpoint(source, [...paths], tensors, metadata, handles);
  }

  private locate(name: string): { info: TensorInfo; handle: FileHandle } {
    if (this.closed) throw new Error(`Checkpoint: read('${name}') after close()`);
    const info = this.tensors.get(name);
    if (!info) throw new ModelLoadError({ file: this.source, tensor: name }, `has no tensor '${name}'`);
    return { info, handle: this.handles.get(info.file)! };
  }

  /** The tensor's raw bytes (little-endian, as stored) in a buffer of its own. */
  async read(name: string): Promise<Uint8Array> {
    const { info, handle } = this.locate(name);
    const buf = fresh(info.byteLength);
    await readFully(handle, buf, info.byteOffset, info.file, `tensor '${name}'`, name);
    return buf;
  }

  /** As `read`, blocking: for feeding a synchronous consumer one tensor at a time. */
  readSync(name: string): Uint8Array {
    const { info, handle } = this.locate(name);
    const buf = fresh(info.byteLength);
    readFullySync(handle.fd, buf, info.byteOffset, info.file, `tensor '${name}'`, name);
    return buf;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.handles.values()].map((h) => h.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
