/**
 * The attention cases of the low-rank keys op (Backend::attentionLowRankKeys) and of plain
 * attention with V narrower than K, shared by the CPU test (against a float64 reference,
 * test/kernels/attention-lowrank.test.ts) and the CUDA twin test (test/gpu/lowrank.test.ts).
 * A case becomes runOp arguments with fresh random values (never zeros): paged coefficients
 * c, values, queries and the basis U, pages at random places in the arena, and -1 in the
 * table for every block no row of the step can reach (a kernel that reads one fails).
 */
import type { NativeRope } from '../../lib/native.js';
import { Rng, randn, randomBlockTables } from '../gpu/twin.js';

export interface LowRankCase {
  name: string;
  numNew: number[];
  pastLen: number[];
  numHeads: number;
  numKvHeads: number;
  /** Width of q and of the expanded keys. */
  headDim: number;
  /** Cached key width: the rank of the keys, or headDim with `plain` keys. */
  kDim: number;
  vDim: number;
  /** Plain keys (attention(), no basis, no RoPE inside): V narrower than K. */
  plain?: boolean;
  window?: number;
  softcap?: number;
  scale?: number;
  blockSize?: number;
  pagesPerBlock?: number;
  dtype?: 'bf16' | 'f32';
  rope?: NativeRope;
}

const LLAMA3: NativeRope = { theta: 500000, scaling: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 };

export const CASES: LowRankCase[] = [
  { name: 'decode GQA 8:2 (G=4) d128 k32 v128', numNew: [1, 1, 1, 1], pastLen: [700, 37, 1500, 0], numHeads: 8, numKvHeads: 2, headDim: 128, kDim: 32, vDim: 128 },
  { name: 'decode MHA 4:4 d64 k8 v16, window 100, f32 pages', numNew: [1, 1, 1], pastLen: [700, 37, 99], numHeads: 4, numKvHeads: 4, headDim: 64, kDim: 8, vDim: 16, window: 100, dtype: 'f32' },
  { name: 'ragged prefill+decode GQA 4:2 d128 k64 v40, soft-cap', numNew: [60, 1, 17], pastLen: [0, 300, 45], numHeads: 4, numKvHeads: 2, headDim: 128, kDim: 64, vDim: 40, softcap: 2, scale: 0.3 },
  { name: 'prefill chunk after a past, GQA 8:2 d64 k24 v64, window 48, block 5, 2 owners per block', numNew: [70], pastLen: [100], numHeads: 8, numKvHeads: 2, headDim: 64, kDim: 24, vDim: 64, window: 48, blockSize: 5, pagesPerBlock: 2 },
  { name: 'k = head dim 128, v16, MHA 2:2, window 1000 > context, f32 pages', numNew: [33, 1], pastLen: [10, 90], numHeads: 2, numKvHeads: 2, headDim: 128, kDim: 128, vDim: 16, window: 1000, dtype: 'f32' },
  { name: 'decode k = head dim 64, v40, GQA 4:2, soft-cap 5', numNew: [1, 1, 1], pastLen: [0, 63, 200], numHeads: 4, numKvHeads: 2, headDim: 64, kDim: 64, vDim: 40, softcap: 5 },
  { name: 'llama3 RoPE past 8k and 20k, GQA 16:4 d128 k32 v128, window 64', numNew: [3, 1], pastLen: [9000, 20000], numHeads: 16, numKvHeads: 4, headDim: 128, kDim: 32, vDim: 128, window: 64, rope: LLAMA3 },
  { name: 'prefill MQA 4:1 d64 k32 v16, window 1', numNew: [40, 25], pastLen: [0, 7], numHeads: 4, numKvHeads: 1, headDim: 64, kDim: 32, vDim: 16, window: 1 },
  { name: 'prefill GQA 4:2 d128 k8 v40, f32 pages, soft-cap', numNew: [50], pastLen: [0], numHeads: 4, numKvHeads: 2, headDim: 128, kDim: 8, vDim: 40, softcap: 1.5, scale: 0.5, dtype: 'f32' },
  { name: 'decode 4k context GQA 8:2 d128 k24 v128', numNew: [1, 1], pastLen: [4000, 2500], numHeads: 8, numKvHeads: 2, headDim: 128, kDim: 24, vDim: 128 },
  { name: 'prefill 130 rows + decode, GQA 8:2 d128 k64 v64, window 90', numNew: [130, 1], pastLen: [20, 400], numHeads: 8, numKvHeads: 2, headDim: 128, kDim: 64, vDim: 64, window: 90 },
  { name: 'd256 k64 v256 GQA 4:2, prefill + decode', numNew: [20, 1], pastLen: [5, 150], numHeads: 4, numKvHeads: 2, headDim: 256, kDim: 64, vDim: 256 },
  // attention() with V narrower than K (V low-rank, keys plain).
  { name: 'plain keys d64, v16, ragged prefill+decode GQA 8:2', plain: true, numNew: [30, 1, 1], pastLen: [5, 80, 0], numHeads: 8, numKvHeads: 2, headDim: 64, kDim: 64, vDim: 16 },
  { name: 'plain keys d128, v40, decode, window 50, soft-cap, f32 pages', plain: true, numNew: [1, 1], pastLen: [300, 20], numHeads: 4, numKvHeads: 2, headDim: 128, kDim: 128, vDim: 40, window: 50, softcap: 3, dtype: 'f32' },
];

/** Pages for every block a row can reach, shuffled; blocks out of every row's reach hold -1. */
export function scenario(c: LowRankCase, rng: Rng, opts: { roundBasis: boolean }) {
  const window = c.window ?? 0;
  const { blockSize: bs, pagesPerBlock: ppb, slot, tableStride, numPages, tables } = randomBlockTables(c, rng);
  const pageElems = bs * c.numKvHeads * (c.kDim + c.vDim);
  const T = c.numNew.reduce((a, b) => a + b, 0);
  // U with unit-variance keys; bf16-exact where asked (a bf16 checkpoint's k_up is).
  const basis = opts.roundBasis ? randn(rng, c.headDim * c.kDim, 1 / Math.sqrt(c.kDim)) : Float32Array.from({ length: c.headDim * c.kDim }, () => rng.normal() / Math.sqrt(c.kDim));
  return {
    kv: { dtype: c.dtype ?? 'bf16', numPages, blockSize: bs, numKvHeads: c.numKvHeads, kDim: c.kDim, vDim: c.vDim, pagesPerBlock: ppb, slot, tableStride, tables, arena: randn(rng, numPages * pageElems) },
    numNew: Int32Array.from(c.numNew),
    pastLen: Int32Array.from(c.pastLen),
    q: randn(rng, T * c.numHeads * c.headDim),
    numHeads: c.numHeads,
    window,
    scale: c.scale ?? 1 / Math.sqrt(c.headDim),
    softcap: c.softcap ?? 0,
    ...(c.plain ? {} : { headDim: c.headDim, basis, rope: c.rope ?? { theta: 10000, scaling: 'default' } }),
  };
}

export type Scenario = ReturnType<typeof scenario>;

/** The op a case runs. */
export const opOf = (c: LowRankCase) => (c.plain ? 'attention' : 'attentionLowRankKeys');
