#!/usr/bin/env node
// Every CUDA op once on small random inputs, for compute-sanitizer (memcheck, racecheck):
//   compute-sanitizer --tool memcheck node test/gpu/sanitize.mjs
// Exits non-zero if an op throws. Not a vitest file: the sanitizer wants one plain process.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addon = createRequire(import.meta.url)('node-gyp-build')(root);
const r = (n, s = 1) => Float32Array.from({ length: n }, () => Math.round((Math.random() * 2 - 1) * s * 256) / 256);
const backend = process.env.MIXATTN_SANITIZE_BACKEND ?? 'cuda';  // 'cpu' checks the script itself
const run = (op, args) => addon.runOp(backend, op, args);
// MIXATTN_SANITIZE_PREFILL=1: only the prefill kernel, in every configuration (attn_prefill_*.cu).
const prefillOnly = process.env.MIXATTN_SANITIZE_PREFILL === '1';
// MIXATTN_SANITIZE_SAMPLE=1: only the sampling kernel (ops_sampling.cu).
const sampleOnly = process.env.MIXATTN_SANITIZE_SAMPLE === '1';
const PREFILL_VARIANTS = { 64: 3, 128: 10, 256: 3 };

if (!prefillOnly && !sampleOnly) {
run('embedding', { tokens: Int32Array.from([1, 5, 2]), table: r(10 * 40), tableType: 'f32', vocab: 10, dim: 40, scale: 2 });
for (const wType of ['f32', 'bf16']) {
  const w = (n) => (wType === 'f32' ? r(n) : Uint16Array.from(r(n), (x) => new Uint32Array(Float32Array.of(x).buffer)[0] >>> 16));
  run('rmsnorm', { x: r(5 * 70), w: w(70), wType, rows: 5, dim: 70, eps: 1e-5 });
  run('addRmsnorm', { residual: r(5 * 70), delta: r(5 * 70), w: w(70), wType, rows: 5, dim: 70, eps: 1e-5 });
  run('matmul', { x: r(3 * 40), w: w(24 * 40), wType, bias: w(24), M: 3, N: 24, K: 40 });
  run('logits', { x: r(3 * 64), w: w(50 * 64), wType, M: 3, N: 50, K: 64, softcap: 3 });
}
run('add', { inout: r(1000), in: r(1000) });
run('gatherRows', { x: r(8 * 16), index: Int32Array.from([3, 0, 7]), dim: 16 });
run('gatedActivation', { gate: r(4 * 50), up: r(4 * 50), T: 4, I: 50, act: 'silu' });
run('rope', { x: r(6 * 3 * 64), positions: Int32Array.from([0, 1, 2, 9, 500, 70000]), heads: 3, headDim: 64, rope: { theta: 1e4, scaling: 'default' } });
}
if (!prefillOnly) {
// sample: every stage (penalties, top-k, top-p, min-p, draw, top logprobs) on a vocab that is a
// multiple of 4 (16-byte loads) and one that is not; params per row as lib/sampling/device.ts packs them:
// uniform, temperature, topK, topP, minP, repetition, presence, frequency, logprobs, topLogprobs.
for (const vocab of [5003, 6000]) {
  const rows = [
    [0.3, 0.8, 40, 0.9, 0.05, 1.2, 0.5, 0.3, 1, 5],
    [0.9, 1.5, 0, 0.5, 0, 1, 0, 0, 0, 20],
    [0, 0, 0, 1, 0, 1.1, 0, 0, 1, 3],
    [0.5, 1, vocab - 1, 1, 0.2, 1, 0, 0, 1, 0],
  ];
  run('sample', {
    logits: Float32Array.from(r(rows.length * vocab, 4), (x, i) => (i % 97 === 0 ? -Infinity : x)),
    rows: rows.length,
    vocab,
    params: Float64Array.from(rows.flat()),
    penalties: Int32Array.from([1, 2, 7, 0, 30, 1, 4, 3]),
    penaltyOffsets: Int32Array.from([0, 3, 3, 4, 4]),
  });
}
}

for (const [D, dtype] of sampleOnly ? [] : [[64, 'bf16'], [128, 'bf16'], [256, 'bf16'], [128, 'f32'], [12, 'f32']]) {
  const bs = 16, H = 2, numPages = 24, tableStride = 10;
  const tables = Int32Array.from({ length: 2 * tableStride }, (_, i) => (i * 7) % numPages);
  const kv = { dtype, numPages, blockSize: bs, numKvHeads: H, kDim: D, vDim: D, pagesPerBlock: 1, slot: 0, tableStride, tables, arena: r(numPages * bs * H * 2 * D) };
  const numNew = Int32Array.from([70, 1]), pastLen = Int32Array.from([3, 150]);
  if (prefillOnly && dtype !== 'bf16') continue;
  run('appendKv', { kv, numNew, pastLen, k: r(71 * H * D), v: r(71 * H * D) });
  if (!prefillOnly) run('ropeQAppendKv', { kv, numNew, pastLen, numHeads: 8, q: r(71 * 8 * D), k: r(71 * H * D), v: r(71 * H * D), rope: { theta: 1e4, scaling: 'default' } });
  const configs = dtype === 'bf16' && PREFILL_VARIANTS[D] ? Array.from({ length: PREFILL_VARIANTS[D] }, (_, i) => `prefill:${i}`) : [];
  for (const path of prefillOnly ? configs : ['generic', 'decode', 'prefill', ...configs]) {
    if (D === 12 && path !== 'generic') continue;
    if (dtype === 'f32' && path.startsWith('prefill')) continue;
    for (const window of [0, 20]) run('attention', { kv, numNew, pastLen, q: r(71 * 8 * D), numHeads: 8, window, scale: 0.1, softcap: window ? 5 : 0, path });
  }
  // Decode with many splits (merged in the last block, and by the combine kernel).
  for (const path of D === 12 ? [undefined] : ['decode', 'decode:combine'])
    if (!prefillOnly) run('attention', { kv, numNew: Int32Array.from([1, 1]), pastLen: Int32Array.from([159, 90]), q: r(2 * 8 * D), numHeads: 8, window: 0, scale: 0.1, softcap: 0, ...(path ? { path } : {}) });
  // The decode kernel's fused append (Backend::ropeAppendAttention; bf16 pages).
  if (!prefillOnly && D !== 12)
    run('ropeAppendAttention', { kv, numNew: Int32Array.from([1, 1]), pastLen: Int32Array.from([159, 90]), numHeads: 8, q: r(2 * 8 * D), k: r(2 * H * D), v: r(2 * H * D), rope: { theta: 1e4, scaling: 'default' }, window: 0, scale: 0.1, softcap: 0 });
}
// Low-rank keys (attn_lowrank_*.cu): both layouts, f32 and bf16 pages, ragged ranks, one
// stage (rank 248 at head dim 256), and attention() with V narrower than K (the same kernels).
if (!prefillOnly) {
  for (const [D, kDim, vDim, dtype] of [[64, 24, 40, 'bf16'], [128, 32, 128, 'bf16'], [128, 64, 16, 'f32'], [256, 248, 256, 'bf16'], [256, 64, 64, 'bf16']]) {
    const bs = 16, H = 2, numPages = 24, tableStride = 10;
    const tables = Int32Array.from({ length: 2 * tableStride }, (_, i) => (i * 7) % numPages);
    const kv = { dtype, numPages, blockSize: bs, numKvHeads: H, kDim, vDim, pagesPerBlock: 1, slot: 0, tableStride, tables, arena: r(numPages * bs * H * (kDim + vDim)) };
    const numNew = Int32Array.from([70, 1]), pastLen = Int32Array.from([3, 150]);
    const keys = { headDim: D, basis: r(D * kDim, 0.2), rope: { theta: 1e4, scaling: 'default' } };
    for (const path of ['decode', 'prefill']) {
      if (D === 256 && kDim === 248 && path === 'prefill') continue;  // does not fit (auto takes decode)
      for (const window of [0, 20])
        run('attentionLowRankKeys', { kv, numNew, pastLen, q: r(71 * 8 * D), numHeads: 8, window, scale: 0.1, softcap: window ? 5 : 0, path, ...keys });
    }
    run('attentionLowRankKeys', { kv, numNew: Int32Array.from([1, 1]), pastLen: Int32Array.from([159, 90]), q: r(2 * 8 * D), numHeads: 8, window: 0, scale: 0.1, softcap: 0, path: 'decode', ...keys });
    const plain = { ...kv, kDim: D, vDim: Math.min(vDim, D / 2), arena: r(numPages * bs * H * (D + Math.min(vDim, D / 2))) };
    for (const path of ['decode', 'prefill'])
      run('attention', { kv: plain, numNew, pastLen, q: r(71 * 8 * D), numHeads: 8, window: 0, scale: 0.1, softcap: 0, path });
  }
}
console.log('sanitize: every op ran');
