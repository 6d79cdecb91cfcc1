/** Our safetensors reader: headers validated before use, positioned reads, sharded checkpoints. */
import { mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpoint, MAX_HEADER_BYTES } from '../../lib/hf/safetensors.js';
import { ModelLoadError } from '../../lib/hf/errors.js';
import { rawFile, safetensorsBytes, writeSafetensors } from './safetensors-writer.js';
import { openFilesUnder, tempRoot, tensor, writeModelDir } from './helpers.js';

const tmp = tempRoot();
afterAll(() => tmp.cleanup());
let n = 0;
const fresh = (bytes: Uint8Array): string => {
  const p = tmp.dir(`f${n++}.safetensors`);
  writeFileSync(p, bytes);
  return p;
};

const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

/** The one-line ModelLoadError of opening `path`, checked to name the file (and `tensor`). */
async function openError(paths: string | string[], tensor?: string, open = () => Checkpoint.openFiles(([] as string[]).concat(paths))): Promise<string> {
  const err = await open().then(
    (cp) => cp.close().then(() => undefined),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelLoadError);
  const e = err as ModelLoadError;
  expect(e.message).not.toContain('\n');
  expect(e.message).toContain(e.file);
  if (tensor !== undefined) {
    expect(e.tensor).toBe(tensor);
    expect(e.message).toContain(`'${tensor}'`);
  }
  expect(openFilesUnder(tmp.root)).toBe(0); // every handle closed
  return e.message;
}

describe('reading', () => {
  it('lists tensors with absolute offsets and reads each into its own buffer, async or sync', async () => {
    const a = tensor('a', 'F32', [2, 2], f32(1, 2, 3, 4));
    const b = tensor('b', 'BF16', [3], new Uint8Array([1, 2, 3, 4, 5, 6]));
    const e = tensor('empty', 'F16', [0, 5]);
    const c = tensor('c', 'I64', [1], new Uint8Array([9, 0, 0, 0, 0, 0, 0, 0]));
    const path = fresh(safetensorsBytes([a, b, e, c], { format: 'pt' }));
    const cp = await Checkpoint.openFiles([path]);
    expect([...cp.tensors.keys()].sort()).toEqual(['a', 'b', 'c', 'empty']);
    expect(cp.metadata.get(path)).toEqual({ format: 'pt' });
    const info = cp.tensors.get('b')!;
    expect(info).toMatchObject({ name: 'b', dtype: 'BF16', shape: [3], file: path, byteLength: 6 });
    expect(info.byteOffset).toBe(cp.tensors.get('a')!.byteOffset + 16);
    expect(await cp.read('a')).toEqual(a.bytes);
    expect(cp.readSync('b')).toEqual(b.bytes);
    expect(await cp.read('empty')).toHaveLength(0);
    const r1 = await cp.read('a');
    const r2 = await cp.read('a');
    expect(r1.buffer).not.toBe(r2.buffer);
    await expect(cp.read('nope')).rejects.toThrow(/has no tensor 'nope'/);
    await cp.close();
    await expect(cp.read('a')).rejects.toThrow(/after close/);
  });
});

describe('header validation', () => {
  const ok = (entries: object, data = new Uint8Array(16)) => fresh(rawFile(JSON.stringify(entries), data));
  const entry = (dtype: string, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });

  it('length: at least 8 bytes, at most 100 MB, within the file', async () => {
    expect(await openError(fresh(new Uint8Array(5)))).toMatch(/is 5 bytes long, too short/);
    expect(await openError(fresh(rawFile('{}', new Uint8Array(0), 2n ** 40n)))).toMatch(new RegExp(`exceeds the ${MAX_HEADER_BYTES}-byte limit`));
    expect(await openError(fresh(rawFile('{}', new Uint8Array(0), 1000n)))).toMatch(/header length 1000 exceeds the 2 bytes after the length field/);
  });

  it('UTF-8 JSON object with an optional string-map __metadata__', async () => {
    expect(await openError(fresh(rawFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))))).toMatch(/not valid UTF-8/);
    expect(await openError(fresh(rawFile('{"a": ')))).toMatch(/not valid JSON/);
    expect(await openError(fresh(rawFile('[1, 2]')))).toMatch(/not a JSON object/);
    expect(await openError(ok({ __metadata__: { n: 1 } }))).toMatch(/__metadata__ must map strings to strings/);
  });

  it('each entry: known dtype, integer shape, [begin, end] offsets', async () => {
    expect(await openError(ok({ w: 3 }), 'w')).toMatch(/not an object/);
    expect(await openError(ok({ w: entry('Q4', [4], [0, 4]) }), 'w')).toMatch(/unknown dtype "Q4"/);
    expect(await openError(ok({ w: entry('F32', [-1], [0, 4]) }), 'w')).toMatch(/shape \[-1\]/);
    expect(await openError(ok({ w: entry('F32', [1.5], [0, 4]) }), 'w')).toMatch(/shape \[1.5\]/);
    expect(await openError(ok({ w: entry('F32', [1], [0]) }), 'w')).toMatch(/data_offsets \[0\]/);
    expect(await openError(ok({ w: entry('F32', [1], [8, 4]) }), 'w')).toMatch(/begin > end/);
  });

  it('offsets inside the data section: a truncated file is caught at open', async () => {
    expect(await openError(ok({ w: entry('F32', [8], [0, 32]) }), 'w')).toMatch(/data_offsets \[0, 32\] outside the 16-byte data section/);
    const bytes = safetensorsBytes([tensor('a', 'F32', [4]), tensor('b', 'F32', [4])]);
    const path = fresh(bytes);
    truncateSync(path, bytes.length - 4);
    expect(await openError(path, 'b')).toMatch(/outside the .*-byte data section \(truncated or corrupt file\)/);
  });

  it('shape × dtype size must equal the byte range', async () => {
    expect(await openError(ok({ w: entry('BF16', [2, 3], [0, 16]) }), 'w')).toMatch(/is BF16 \[2,3\] \(12 bytes\) but data_offsets \[0, 16\] span 16 bytes/);
  });

  it('no two tensors may overlap (empty tensors take no room)', async () => {
    expect(await openError(ok({ a: entry('F32', [3], [0, 12]), b: entry('F32', [2], [8, 16]) }), 'b')).toMatch(/'b' overlaps tensor 'a'/);
    expect(await openError(ok({ a: entry('F32', [4], [0, 16]), e: entry('F32', [0], [4, 4]), b: entry('F32', [1], [12, 16]) }), 'b')).toMatch(/overlaps tensor 'a'/);
    const cp = await Checkpoint.openFiles([ok({ a: entry('F32', [2], [0, 8]), e: entry('F32', [0], [4, 4]), b: entry('F32', [2], [8, 16]) })]);
    await cp.close();
  });
});

describe('model directories and sharded checkpoints', () => {
  const t = (name: string) => tensor(name, 'F32', [2], f32(1, 2));
  const shardDir = (name: string, index: object, shards: Record<string, string[]>): string => {
    const dir = tmp.dir(name);
    mkdirSync(dir, { recursive: true });
    for (const [file, names] of Object.entries(shards)) writeSafetensors(join(dir, file), names.map(t));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    return dir;
  };
  const open = (dir: string) => () => Checkpoint.open(dir);

  it('opens an index and its shards', async () => {
    const dir = shardDir('sh-ok', { weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }, { 's1.safetensors': ['a'], 's2.safetensors': ['b'] });
    const cp = await Checkpoint.open(dir);
    expect(cp.tensors.get('b')!.file).toBe(join(dir, 's2.safetensors'));
    expect(cp.source).toBe(join(dir, 'model.safetensors.index.json'));
    expect(cp.readSync('b')).toEqual(f32(1, 2));
    await cp.close();
  });

  it('refuses a missing shard, a wrong mapping, a tensor in two shards, a bad index', async () => {
    const missing = shardDir('sh-missing', { weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }, { 's1.safetensors': ['a'] });
    expect(await openError([], 'b', open(missing))).toMatch(/model\.safetensors\.index\.json: lists shard 's2\.safetensors' \(for tensor 'b'\) but .*s2\.safetensors does not exist/);
    const wrong = shardDir('sh-wrong', { weight_map: { a: 's2.safetensors', b: 's2.safetensors' } }, { 's1.safetensors': ['a'], 's2.safetensors': ['b'] });
    expect(await openError([], 'a', open(wrong))).toMatch(/maps tensor 'a' to 's2\.safetensors' but no shard holds it/);
    const twice = shardDir('sh-twice', { weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }, { 's1.safetensors': ['a'], 's2.safetensors': ['a', 'b'] });
    expect(await openError([], 'a', open(twice))).toMatch(/s2\.safetensors: holds tensor 'a', which .*s1\.safetensors holds too/);
    const escape = shardDir('sh-escape', { weight_map: { a: '../x.safetensors' } }, {});
    expect(await openError([], 'a', open(escape))).toMatch(/not a file name in the model directory/);
    const noMap = shardDir('sh-nomap', { metadata: {} }, {});
    expect(await openError([], undefined, open(noMap))).toMatch(/no 'weight_map' object/);
  });

  it('a directory without weights names what it found', async () => {
    const dir = writeModelDir(tmp.dir('no-weights'), { config: {}, tensors: [] });
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    rmSync(join(dir, 'model.safetensors'));
    expect(await openError([], undefined, open(dir))).toMatch(/has no model\.safetensors or model\.safetensors\.index\.json \(found pytorch_model\.bin/);
  });
});
