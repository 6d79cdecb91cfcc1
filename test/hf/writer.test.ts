/**
 * lib/hf/safetensors-writer.ts: files byte-identical to the independent test writer's, read
 * back by our reader; f16 encoding against the test helpers' own; bad input leaves no file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { encodeTensor, f16Bits, writeSafetensors, type TensorToWrite } from '../../lib/hf/safetensors-writer.js';
import { Checkpoint } from '../../lib/hf/safetensors.js';
import { toF32 } from '../../lib/hf/convert.js';
import { Prng } from '../../lib/model/prng.js';
import { f16, tempRoot } from './helpers.js';
import { safetensorsBytes } from './safetensors-writer.js';

const t = tempRoot();
afterAll(() => t.cleanup());

const rng = new Prng(9);
const values = (n: number) => Float32Array.from({ length: n }, () => rng.normal() * 3);

describe('safetensors writer', () => {
  const a = values(6);
  const b = values(35);
  const c = values(4);
  const tensors: TensorToWrite[] = [
    { name: 'a.weight', dtype: 'F32', shape: [2, 3], bytes: () => encodeTensor(a, 'F32') },
    { name: 'b.weight', dtype: 'BF16', shape: [5, 7], bytes: () => encodeTensor(b, 'BF16') },
    { name: 'c', dtype: 'F16', shape: [4], bytes: async () => encodeTensor(c, 'F16') },
    { name: 'scalar', dtype: 'I64', shape: [], bytes: () => new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0]) },
  ];

  it('writes what the reference layout holds, and our reader reads it back', async () => {
    const path = t.dir('m.safetensors');
    await writeSafetensors(path, tensors);
    const expected = safetensorsBytes(
      await Promise.all(tensors.map(async (x) => ({ name: x.name, dtype: x.dtype as 'F32', shape: [...x.shape], bytes: await x.bytes() }))),
      { format: 'pt' },
    );
    const got = readFileSync(path);
    expect(Buffer.compare(got, Buffer.from(expected))).toBe(0);
    const cp = await Checkpoint.openFiles([path]);
    try {
      expect([...cp.tensors.keys()]).toEqual(['a.weight', 'b.weight', 'c', 'scalar']);
      expect(cp.tensors.get('b.weight')!.shape).toEqual([5, 7]);
      expect(Array.from(toF32('F32', await cp.read('a.weight')))).toEqual(Array.from(a));
      const bBack = toF32('BF16', await cp.read('b.weight'));
      bBack.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThanOrEqual(Math.abs(b[i]) * 2 ** -8));
      const cBack = toF32('F16', await cp.read('c'));
      cBack.forEach((v, i) => expect(v).toBe(f16(c[i]).value));
    } finally {
      await cp.close();
    }
    expect(readdirSync(t.root).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('encodes f16 as the test helpers do (normals, subnormals, signs), ties to even', () => {
    const xs = [0, -0, 1, -1, 65504, 1 / 3, 6.1e-5, 5.96e-8, 1e-6, -2.5e-7, 0.1, 1234.5678, ...values(200)];
    for (const x of xs) expect(f16Bits(Math.fround(x)), `f16(${x})`).toBe(f16(Math.fround(x)).bits);
    // Exact ties go to the even mantissa (the helper rounds them up).
    expect(f16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16Bits(-(2 ** -25) * 3)).toBe(0x8002); // a subnormal tie: 1.5 ulp → 2
  });

  it('a tensor of the wrong size or a repeated name fails, leaving no file', async () => {
    const path = t.dir('bad.safetensors');
    const bad = [...tensors.slice(0, 1), { name: 'short', dtype: 'F32' as const, shape: [3], bytes: () => new Uint8Array(8) }];
    await expect(writeSafetensors(path, bad)).rejects.toThrow(/tensor 'short' \(F32 \[3\]\) got 8 bytes, expected 12/);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.partial`)).toBe(false);
    await expect(writeSafetensors(path, [tensors[0], tensors[0]])).rejects.toThrow(/'a\.weight' is given twice/);
    expect(existsSync(path)).toBe(false);
  });
});
