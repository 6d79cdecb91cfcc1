/**
 * An owner layer's append and attention in one call (Backend::ropeAppendAttention). On the
 * CUDA backend a decode step's attention kernel rotates q and the new keys and writes the new
 * K/V rows to their pages itself (attn_decode_mma.cu, AttnArgs::newK): its pages and its
 * output must be the bits the separate ops give on the same backend (ropeQAppendKv, then
 * attention), and within the decode attention bound of the CPU twin. The cases put the new key
 * at the start of the cache (p = 0), of a block, of a key tile and deep in a long context;
 * windows; MQA with two head groups per KV head (one page writer); d64, d128 and d256; and a
 * step with a prefill row, where the backend falls back to the separate ops.
 */
import { describe, expect, it } from 'vitest';
import { Rng, SEED, TWIN, bound, cudaAvailable, randn, randomBlockTables, relErr, report, runOp } from './twin.js';

interface Case {
  name: string;
  pastLen: number[];
  numNew?: number[];
  numHeads: number;
  numKvHeads: number;
  kDim: number;
  window?: number;
  softcap?: number;
  scale?: number;
}

const CASES: Case[] = [
  { name: 'GQA 8:2 d128, new keys at 0, 15, 16, 63, 64, 1000, 4095', pastLen: [0, 15, 16, 63, 64, 1000, 4095], numHeads: 8, numKvHeads: 2, kDim: 128 },
  { name: 'MQA 32:1 d64 (two head groups per KV head), window 40', pastLen: [5, 700, 128], numHeads: 32, numKvHeads: 1, kDim: 64, window: 40 },
  // A window whose start is not on the 64-key grid, and many splits: a split's last tile
  // reaches into the next split's keys, the new key among them.
  { name: 'GQA 8:2 d128, window 1000, new keys at 1000 and 3001 (splits whose tiles cross)', pastLen: [1000, 3001], numHeads: 8, numKvHeads: 2, kDim: 128, window: 1000 },
  { name: 'd256 GQA 4:2, soft-cap', pastLen: [300, 2047], numHeads: 4, numKvHeads: 2, kDim: 256, softcap: 5, scale: 0.25 },
  { name: 'batch 1, 16:8 d128 at 4k (the end-to-end model)', pastLen: [4096], numHeads: 16, numKvHeads: 8, kDim: 128 },
  { name: 'a prefill row in the step: the separate ops', pastLen: [30, 200], numNew: [9, 1], numHeads: 8, numKvHeads: 2, kDim: 128 },
];

const ROPE = { theta: 500000, scaling: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 };

function scenario(c: Case, rng: Rng) {
  const numNew = c.numNew ?? c.pastLen.map(() => 1);
  const t = randomBlockTables({ numNew, pastLen: c.pastLen, window: c.window }, rng);
  const T = numNew.reduce((a, b) => a + b, 0);
  const pageElems = t.blockSize * c.numKvHeads * 2 * c.kDim;
  return {
    // Random bytes where the new rows go too: a kernel that read them from the page instead of
    // taking the new key would be off.
    kv: { dtype: 'bf16', numPages: t.numPages, blockSize: t.blockSize, numKvHeads: c.numKvHeads, kDim: c.kDim, vDim: c.kDim, pagesPerBlock: t.pagesPerBlock, slot: t.slot, tableStride: t.tableStride, tables: t.tables, arena: randn(rng, t.numPages * pageElems) },
    numNew: Int32Array.from(numNew),
    pastLen: Int32Array.from(c.pastLen),
    numHeads: c.numHeads,
    q: randn(rng, T * c.numHeads * c.kDim),
    k: randn(rng, T * c.numKvHeads * c.kDim),
    v: randn(rng, T * c.numKvHeads * c.kDim),
    rope: ROPE,
    window: c.window ?? 0,
    scale: c.scale ?? 1 / Math.sqrt(c.kDim),
    softcap: c.softcap ?? 0,
  };
}

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe.skipIf(!cudaAvailable)(`ropeAppendAttention: fused append = the separate ops (${TWIN}, seed ${SEED})`, () => {
  const rng = new Rng(SEED + 7);
  for (const c of CASES) {
    it(c.name, () => {
      const args = scenario(c, rng);
      const fused = runOp(TWIN, 'ropeAppendAttention', args);
      const appended = runOp(TWIN, 'ropeQAppendKv', args);
      const separate = runOp(TWIN, 'attention', { ...args, kv: { ...args.kv, arena: appended.arena }, q: appended.q });
      expect(Buffer.compare(bits(fused.arena), bits(appended.arena)), 'pages').toBe(0);
      expect(Buffer.compare(bits(fused.out), bits(separate.out)), 'attention output').toBe(0);
      const cpu = runOp('cpu', 'ropeAppendAttention', args);
      const tol = bound(`attention_decode_d${c.kDim}`);
      const err = relErr(fused.out, cpu.out);
      report(`ropeAppendAttention ${c.name}`, err, tol);
      expect(err, `rel err ${err} > ${tol}`).toBeLessThanOrEqual(tol);
      expect(relErr(fused.arena, cpu.arena)).toBeLessThanOrEqual(bound('rope'));
    });
  }
});
