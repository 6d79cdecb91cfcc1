/**
 * CUDA paged attention against the CPU twin: ragged batches mixing prefill chunks and decode
 * rows, GQA/MQA/MHA, sliding windows whose dropped blocks hold -1 in the table (so reading one
 * would fail the step), long decode contexts (split-KV), soft-caps, block sizes that do not
 * divide anything, several owners per block (slot), odd head dims and kDim != vDim, f32 and
 * bf16 pages. Every kernel a layout supports is run: 'auto', and each of 'generic', 'decode',
 * 'decode:combine' (split-KV merged by the combine kernel instead of the decode kernel's last
 * blocks), 'prefill' forced; and the two split merges give the same bits, call after call.
 */
import { describe, expect, it } from 'vitest';
import { Rng, SEED, TWIN, bound, cudaAvailable, randn, randomBlockTables, relErr, report, runOp } from './twin.js';

interface Case {
  name: string;
  numNew: number[];
  pastLen: number[];
  numHeads: number;
  numKvHeads: number;
  kDim: number;
  vDim?: number;
  window?: number;
  softcap?: number;
  scale?: number;
  blockSize?: number;
  pagesPerBlock?: number;
  dtype?: 'bf16' | 'f32';
}

/** Pages for every block a row can reach, at random; blocks a window has left hold -1. */
function scenario(c: Case, rng: Rng) {
  const vDim = c.vDim ?? c.kDim, window = c.window ?? 0;
  const { blockSize: bs, pagesPerBlock: ppb, slot, tableStride, numPages, tables } = randomBlockTables(c, rng);
  const pageElems = bs * c.numKvHeads * (c.kDim + vDim);
  const T = c.numNew.reduce((a, b) => a + b, 0);
  return {
    kv: { dtype: c.dtype ?? 'bf16', numPages, blockSize: bs, numKvHeads: c.numKvHeads, kDim: c.kDim, vDim, pagesPerBlock: ppb, slot, tableStride, tables, arena: randn(rng, numPages * pageElems) },
    numNew: Int32Array.from(c.numNew),
    pastLen: Int32Array.from(c.pastLen),
    q: randn(rng, T * c.numHeads * c.kDim),
    numHeads: c.numHeads,
    window,
    scale: c.scale ?? 1 / Math.sqrt(c.kDim),
    softcap: c.softcap ?? 0,
  };
}

/** Prefill kernel configurations compiled per head dim (attn_prefill_{64,128,256}.cu). */
const PREFILL_VARIANTS: Record<number, number> = { 64: 3, 128: 13, 256: 3 };
/**
 * MIXATTN_PREFILL_SKIP / MIXATTN_PREFILL_ONLY: comma lists of "headDim:N" configurations to
 * leave out / to run alone (then no other path either), so a kernel that faults (and spoils
 * the CUDA context) can be checked in a process of its own.
 */
const listEnv = (v: string | undefined) => new Set((v ?? '').split(',').filter(Boolean));
const SKIP = listEnv(process.env.MIXATTN_PREFILL_SKIP);
const ONLY = listEnv(process.env.MIXATTN_PREFILL_ONLY);

/** The kernels that support a case (attention.cc's rules); the prefill kernel in every configuration. */
function paths(c: Case): string[] {
  const fast = (c.vDim ?? c.kDim) === c.kDim && [64, 128, 256].includes(c.kDim);
  const variants = Array.from({ length: PREFILL_VARIANTS[c.kDim] ?? 0 }, (_, i) => i).filter((i) => !SKIP.has(`${c.kDim}:${i}`) && (ONLY.size === 0 || ONLY.has(`${c.kDim}:${i}`)));
  const canPrefill = fast && (c.dtype ?? 'bf16') === 'bf16';
  const configs = canPrefill ? variants.map((i) => `prefill:${i}`) : [];
  if (ONLY.size > 0) return configs;
  return ['auto', 'generic', ...(fast ? ['decode', 'decode:combine'] : []), ...(canPrefill ? ['prefill'] : []), ...configs];
}

function boundFor(c: Case, path: string): number {
  const small = ![64, 128, 256].includes(c.kDim);
  const decodeLike = c.numNew.every((n) => n === 1);
  const kind = path.startsWith('decode') || (path === 'auto' && decodeLike) ? 'decode' : 'prefill';
  return bound(`attention_${kind}_d${small ? 8 : c.kDim}`);
}

const CASES: Case[] = [
  // Decode: one row per sequence, contexts from 1 to 4k (split-KV), GQA 4.
  { name: 'decode GQA 8:2 d128', numNew: [1, 1, 1, 1], pastLen: [1000, 37, 4095, 0], numHeads: 8, numKvHeads: 2, kDim: 128 },
  { name: 'decode MQA 8:1 d64, window 100', numNew: [1, 1, 1], pastLen: [700, 99, 5], numHeads: 8, numKvHeads: 1, kDim: 64, window: 100 },
  { name: 'decode d256, soft-cap', numNew: [1, 1], pastLen: [300, 2000], numHeads: 4, numKvHeads: 2, kDim: 256, scale: 0.25, softcap: 5 },
  { name: 'decode long context 32k, batch 1, GQA 16:2 d128', numNew: [1], pastLen: [32767], numHeads: 16, numKvHeads: 2, kDim: 128 },
  { name: 'decode 32k window 1024, d128', numNew: [1, 1], pastLen: [32767, 3000], numHeads: 16, numKvHeads: 4, kDim: 128, window: 1024 },
  // Prefill chunks mixed with decode rows, ragged.
  { name: 'ragged prefill+decode GQA 8:2 d128', numNew: [130, 1, 64], pastLen: [0, 200, 77], numHeads: 8, numKvHeads: 2, kDim: 128 },
  { name: 'ragged prefill window 48 d64 MHA', numNew: [100, 37], pastLen: [30, 0], numHeads: 4, numKvHeads: 4, kDim: 64, window: 48 },
  { name: 'prefill chunk after a long past, GQA 6:2 (G=3) d128, window 300', numNew: [257], pastLen: [1500], numHeads: 6, numKvHeads: 2, kDim: 128, window: 300 },
  { name: 'prefill d256 soft-cap, block 5, 2 owners per block', numNew: [70, 9], pastLen: [3, 40], numHeads: 4, numKvHeads: 1, kDim: 256, softcap: 2, scale: 0.3, blockSize: 5, pagesPerBlock: 2 },
  { name: 'prefill MQA 16:1 d64 (G=16), window 1 ', numNew: [40], pastLen: [10], numHeads: 16, numKvHeads: 1, kDim: 64, window: 1 },
  { name: 'prefill 1024 causal GQA 32:8 d128', numNew: [1024], pastLen: [0], numHeads: 32, numKvHeads: 8, kDim: 128 },
  // Many key tiles per block: windows across tile edges, ragged rows, tiles skipped on both sides.
  { name: 'ragged prefill GQA 8:2 d128, window 200, past 1000', numNew: [300, 77, 1], pastLen: [1000, 5, 40], numHeads: 8, numKvHeads: 2, kDim: 128, window: 200 },
  { name: 'prefill 700 causal MHA d64 after a past of 333', numNew: [700], pastLen: [333], numHeads: 2, numKvHeads: 2, kDim: 64 },
  { name: 'prefill d256 GQA 4:2 window 100, 260 rows', numNew: [260], pastLen: [17], numHeads: 4, numKvHeads: 2, kDim: 256, window: 100 },
  { name: 'prefill f32 pages d128', numNew: [50, 1], pastLen: [20, 60], numHeads: 4, numKvHeads: 2, kDim: 128, dtype: 'f32' },
  // Odd head dims (the generic kernel).
  { name: 'head dim 6 MQA 5:1', numNew: [19, 1], pastLen: [0, 30], numHeads: 5, numKvHeads: 1, kDim: 6, window: 5 },
  { name: 'head dim 12, kDim 12 != vDim 8, f32 pages', numNew: [7, 3], pastLen: [9, 0], numHeads: 6, numKvHeads: 3, kDim: 12, vDim: 8, dtype: 'f32' },
  { name: 'head dim 10 soft-cap, block 3', numNew: [17], pastLen: [4], numHeads: 6, numKvHeads: 3, kDim: 10, softcap: 1.5, scale: 0.5, blockSize: 3 },
];

describe.skipIf(!cudaAvailable)(`CUDA attention vs CPU twin (${TWIN}, seed ${SEED})`, () => {
  const rng = new Rng(SEED + 1);
  for (const c of CASES) {
    it(c.name, () => {
      const args = scenario(c, rng);
      const cpu = runOp('cpu', 'attention', args).out;
      // Every path is checked (soft) so one run shows every kernel that is off.
      for (const path of paths(c)) {
        const check = `attention ${c.name} [${path}]`;
        const err = relErr(runOp(TWIN, 'attention', { ...args, path }).out, cpu);
        report(check, err, boundFor(c, path));
        expect.soft(err, `${check}: rel err ${err} > ${boundFor(c, path)}`).toBeLessThanOrEqual(boundFor(c, path));
      }
    });
  }
});

/**
 * Split-KV decode merges its splits in the last block of each (row, head group) to finish,
 * counting arrivals in counters that block resets: the same bits as the combine kernel, on
 * every call after the first too (a counter left non-zero would leave outputs unwritten, and
 * runOp poisons them). Batch-1 contexts from 2 to 512 key tiles give split counts from 2 up to
 * the cap of 256 on any GPU; short rows next to long ones give empty splits.
 */
const MERGE_CASES: Case[] = [
  { name: '2 tiles, batch 1, GQA 16:2 d128', numNew: [1], pastLen: [100], numHeads: 16, numKvHeads: 2, kDim: 128 },
  { name: '10 tiles, batch 1, GQA 16:2 d128', numNew: [1], pastLen: [600], numHeads: 16, numKvHeads: 2, kDim: 128 },
  { name: '79 tiles, batch 1, GQA 32:8 d128', numNew: [1], pastLen: [5000], numHeads: 32, numKvHeads: 8, kDim: 128 },
  { name: '512 tiles, batch 1, GQA 16:2 d128', numNew: [1], pastLen: [32767], numHeads: 16, numKvHeads: 2, kDim: 128 },
  { name: 'ragged batch with empty splits, MQA 16:1 d64 (16 heads per block)', numNew: [1, 1, 1, 1], pastLen: [4000, 0, 63, 1500], numHeads: 16, numKvHeads: 1, kDim: 64 },
  { name: 'MHA 4:4 d256 (one head per block), window 700, soft-cap', numNew: [1, 1], pastLen: [3000, 650], numHeads: 4, numKvHeads: 4, kDim: 256, window: 700, softcap: 3 },
  { name: 'f32 pages d64 (scalar kernel), GQA 8:2', numNew: [1, 1, 1], pastLen: [2500, 17, 900], numHeads: 8, numKvHeads: 2, kDim: 64, dtype: 'f32' },
];

describe.skipIf(!cudaAvailable)(`split-KV decode: merged in the last block vs by the combine kernel (${TWIN}, seed ${SEED})`, () => {
  const rng = new Rng(SEED + 2);
  const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  for (const c of MERGE_CASES) {
    it(c.name, () => {
      const args = scenario(c, rng);
      const combined = runOp(TWIN, 'attention', { ...args, path: 'decode:combine' }).out;
      const err = relErr(combined, runOp('cpu', 'attention', args).out);
      expect(err, `combine kernel vs cpu`).toBeLessThanOrEqual(boundFor(c, 'decode'));
      for (let call = 0; call < 4; call++) {
        const merged = runOp(TWIN, 'attention', { ...args, path: 'decode' }).out;
        expect(Buffer.compare(bits(merged), bits(combined)), `call ${call}`).toBe(0);
      }
    });
  }
});
