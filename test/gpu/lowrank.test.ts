/**
 * CUDA attention with low-rank keys (attentionLowRankKeys: keys expanded from c[kDim] with
 * U and rotated at their positions inside the kernel), and plain attention with V narrower
 * than K, against the CPU twin (test/kernels/attention-lowrank.test.ts checks the twin against
 * a float64 reference): the cases of test/kernels/lowrank-cases.ts plus long decode contexts
 * (split-KV), big prefill chunks, 16 query heads per KV head and wide ranks at head dim 256.
 * Every layout is run: 'auto', and the decode and prefill layouts forced; the decode layout's
 * split merge in its last blocks gives the combine kernel's bits ('decode:combine').
 *
 * Bounds: 2 × PyTorch's own bf16 error (twin.ts) on the same computation: low-rank keys as
 * PyTorch runs them in bf16 (k = c·Uᵀ as a bf16 linear, HF RoPE, SDPA) for attentionLowRankKeys
 * (attention_lowrank_* in bf16-bounds.json), plain attention for V narrower than K. U is drawn
 * bf16-exact, as a bf16 checkpoint's k_up is (the kernels round U to bf16 for the tensor cores).
 */
import { describe, expect, it } from 'vitest';
import { CASES, type LowRankCase, opOf, scenario } from '../kernels/lowrank-cases.js';
import { Rng, SEED, TWIN, bound, cudaAvailable, relErr, report, runOp } from './twin.js';

const GPU_CASES: (LowRankCase & { prefillTooWide?: boolean })[] = [
  { name: 'decode 32k, batch 1, GQA 16:2 (two head groups per KV head) d128 k32 v32', numNew: [1], pastLen: [32767], numHeads: 16, numKvHeads: 2, headDim: 128, kDim: 32, vDim: 32 },
  { name: 'decode 32k window 1024 and 3000, GQA 32:8 d128 k64 v64', numNew: [1, 1], pastLen: [32767, 3000], numHeads: 32, numKvHeads: 8, headDim: 128, kDim: 64, vDim: 64, window: 1024 },
  { name: 'decode batch 8 x 2k, GQA 32:8 d128 k96 v96, soft-cap', numNew: [1, 1, 1, 1, 1, 1, 1, 1], pastLen: [2047, 2000, 1500, 100, 2047, 7, 900, 1999], numHeads: 32, numKvHeads: 8, headDim: 128, kDim: 96, vDim: 96, softcap: 4, scale: 0.1 },
  { name: 'prefill 512 causal GQA 32:8 d128 k64 v64', numNew: [512], pastLen: [0], numHeads: 32, numKvHeads: 8, headDim: 128, kDim: 64, vDim: 64 },
  { name: 'prefill 300 after 1000, window 200, GQA 8:2 d64 k40 v24', numNew: [300, 1], pastLen: [1000, 40], numHeads: 8, numKvHeads: 2, headDim: 64, kDim: 40, vDim: 24, window: 200 },
  // One K/V stage in shared memory; the prefill layout does not fit at all (auto takes the
  // decode layout, a forced prefill layout throws).
  { name: 'd256 rank 248 v256 (one stage), decode 2000 and prefill 40', numNew: [1, 40], pastLen: [2000, 3], numHeads: 4, numKvHeads: 2, headDim: 256, kDim: 248, vDim: 256, prefillTooWide: true },
  { name: 'd256 k128 v128 GQA 8:1, decode 5000, bf16 block 32', numNew: [1], pastLen: [5000], numHeads: 8, numKvHeads: 1, headDim: 256, kDim: 128, vDim: 128, blockSize: 32 },
  { name: 'plain keys d128 v32, prefill 200 + decode 3000, GQA 32:8', plain: true, numNew: [200, 1], pastLen: [0, 3000], numHeads: 32, numKvHeads: 8, headDim: 128, kDim: 128, vDim: 32 },
  { name: 'plain keys d256 v64, decode 1000, window 300', plain: true, numNew: [1, 1], pastLen: [1000, 200], numHeads: 4, numKvHeads: 2, headDim: 256, kDim: 256, vDim: 64, window: 300 },
];

const LAYOUTS = ['auto', 'decode', 'prefill'] as const;

function boundFor(c: LowRankCase, path: (typeof LAYOUTS)[number]): number {
  const decodeLike = c.numNew.every((n) => n === 1);
  const kind = path === 'decode' || (path === 'auto' && decodeLike) ? 'decode' : 'prefill';
  return bound(c.plain ? `attention_${kind}_d${c.kDim}` : `attention_lowrank_${kind}_d${c.headDim}`);
}

describe.skipIf(!cudaAvailable)(`CUDA attention with low-rank keys vs CPU twin (${TWIN}, seed ${SEED})`, () => {
  const rng = new Rng(SEED + 3);
  for (const c of [...CASES, ...GPU_CASES]) {
    it(c.name, () => {
      const args = scenario(c, rng, { roundBasis: true });
      const cpu = runOp('cpu', opOf(c), args).out;
      for (const path of LAYOUTS) {
        if (path === 'prefill' && 'prefillTooWide' in c && TWIN === 'cuda') {
          expect(() => runOp(TWIN, opOf(c), { ...args, path })).toThrow(/need more shared memory per block than the device's \d+ bytes \(prefill layout\)/);
          continue;
        }
        const check = `${opOf(c)} ${c.name} [${path}]`;
        const tol = boundFor(c, path);
        const err = relErr(runOp(TWIN, opOf(c), { ...args, path }).out, cpu);
        report(check, err, tol);
        expect.soft(err, `${check}: rel err ${err} > ${tol}`).toBeLessThanOrEqual(tol);
      }
    });
  }

  it('decode layout: splits merged by the last block equal the combine kernel bit for bit, call after call', () => {
    const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    for (const c of GPU_CASES.filter((g) => g.numNew.some((n) => n === 1) && Math.max(...g.pastLen) >= 1000)) {
      const args = scenario(c, rng, { roundBasis: true });
      const combined = runOp(TWIN, opOf(c), { ...args, path: 'decode:combine' }).out;
      expect(relErr(combined, runOp('cpu', opOf(c), args).out), `${c.name}: combine kernel vs cpu`).toBeLessThanOrEqual(boundFor(c, 'decode'));
      for (let call = 0; call < 3; call++) {
        const merged = runOp(TWIN, opOf(c), { ...args, path: 'decode' }).out;
        expect(Buffer.compare(bits(merged), bits(combined)), `${c.name}, call ${call}`).toBe(0);
      }
    }
  });

  it('bad arguments and bad pages: one clear error naming the op, and the backend stays usable', () => {
    const c: LowRankCase = { name: 'errors', numNew: [3, 1], pastLen: [40, 9], numHeads: 4, numKvHeads: 2, headDim: 64, kDim: 32, vDim: 32 };
    const args = scenario(c, rng, { roundBasis: true });
    const run = (over: Record<string, unknown>) => () => runOp(TWIN, 'attentionLowRankKeys', { ...args, ...over });
    const tables = Int32Array.from(args.kv.tables);
    tables[0] = -1;
    expect(run({ kv: { ...args.kv, tables } })).toThrow(/attentionLowRankKeys: sequence 0 position 0: page id -1 is missing/);
    expect(run({ headDim: 16, basis: new Float32Array(16 * 32), q: new Float32Array(4 * 4 * 16).fill(1) })).toThrow(/attentionLowRankKeys: .*(exceeds the head dim 16|head dim 16 is not supported)/);
    if (TWIN === 'cuda') {
      const kv12 = { ...args.kv, kDim: 12, arena: 3 };
      expect(run({ kv: kv12, basis: new Float32Array(64 * 12) })).toThrow(/attentionLowRankKeys: key rank \(kv.kDim 12\) must be a multiple of 8 on CUDA/);
      expect(run({ headDim: 96, basis: new Float32Array(96 * 32), q: new Float32Array(4 * 4 * 96).fill(1) })).toThrow(/attentionLowRankKeys: head dim 96 is not supported by the CUDA kernels/);
    }
    // Still usable: a good call afterwards matches the twin.
    const out = runOp(TWIN, 'attentionLowRankKeys', args).out;
    expect(relErr(out, runOp('cpu', 'attentionLowRankKeys', args).out)).toBeLessThanOrEqual(boundFor(c, 'auto'));
  });
});
