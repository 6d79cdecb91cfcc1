#!/usr/bin/env node
// Decode attention with low-rank keys (Eigen Attention, issue 8) against full-width keys on
// the GPU: one decode row per sequence at a 32k context, batch 1 and 8, 32 query / 8 KV heads,
// head dim 128, bf16 pages of 16 tokens behind a shuffled block table. Full width runs
// attention() (kDim = vDim = 128); low rank runs attentionLowRankKeys at kDim = vDim = r for
// r in 32, 64, 96 (keys expanded and rotated inside the kernel), plus attention() with full
// keys and V at rank 64 (V low-rank alone). Each is timed through the addon's runOp with
// `repeat` (enqueued `repeat` times between two synchronizations, after one untimed run), the
// best of 3; inputs are made from seeds in native code.
//
// Bytes = the K and V bytes a step must read (batch × ctx × kvHeads × (kDim + vDim) × 2);
// TB/s = bytes / time. Writes bench/results/lowrank-attention-<date>.json and prints a table.
//
// Usage (GPU machine, addon built with CUDA): node bench/lowrank-attention.mjs [--quick]
//   MIXATTN_COMMIT is recorded in the results.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = createRequire(import.meta.url)('node-gyp-build')(root);
const info = addon.backendInfo().cuda;
if (!info.available) {
  console.error(`lowrank-attention: no CUDA backend (${info.reason})`);
  process.exit(1);
}

const QUICK = process.argv.includes('--quick');
const BS = 16, H = 32, HKV = 8, D = 128, CTX = 32768;
const REPEAT = QUICK ? 5 : 20;
const ROPE = { theta: 500000, scaling: 'default' };

/** The runOp arguments of one decode step: `batch` rows at position CTX - 1. */
function args(batch, kDim, vDim, lowRank) {
  const blocksPerSeq = Math.ceil(CTX / BS);
  const numPages = blocksPerSeq * batch;
  const perm = Int32Array.from({ length: numPages }, (_, i) => i);
  for (let i = numPages - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return {
    kv: { dtype: 'bf16', numPages, blockSize: BS, numKvHeads: HKV, kDim, vDim, pagesPerBlock: 1, slot: 0, tableStride: blocksPerSeq, tables: perm, arena: 7 },
    numNew: new Int32Array(batch).fill(1),
    pastLen: new Int32Array(batch).fill(CTX - 1),
    q: 11,
    numHeads: H,
    window: 0,
    scale: 1 / Math.sqrt(D),
    softcap: 0,
    repeat: REPEAT,
    ...(lowRank ? { headDim: D, basis: 5, rope: ROPE } : {}),
  };
}

const variants = [
  { impl: 'full keys and values (attention)', op: 'attention', kDim: D, vDim: D },
  ...[32, 64, 96].map((r) => ({ impl: `low-rank keys and values r=${r} (attentionLowRankKeys)`, op: 'attentionLowRankKeys', kDim: r, vDim: r, rank: r })),
  { impl: 'full keys, values r=64 (attention)', op: 'attention', kDim: D, vDim: 64 },
];

const rows = [];
for (const batch of QUICK ? [1] : [1, 8]) {
  let full;
  for (const v of variants) {
    const a = args(batch, v.kDim, v.vDim, v.op === 'attentionLowRankKeys');
    const t = [];
    for (let i = 0; i < 3; i++) t.push(addon.runOp('cuda', v.op, a).seconds);
    const seconds = Math.min(...t);
    const bytes = batch * CTX * HKV * (v.kDim + v.vDim) * 2;
    full ??= seconds;
    const row = { shape: `decode ${batch} x 32k`, impl: v.impl, op: v.op, batch, ctx: CTX, heads: H, kvHeads: HKV, headDim: D, kDim: v.kDim, vDim: v.vDim, seconds, bytes, tbps: bytes / seconds / 1e12, speedupVsFull: full / seconds };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
}

const date = new Date().toISOString().slice(0, 10);
const doc = { device: info.deviceName, date, commit: process.env.MIXATTN_COMMIT ?? 'unknown', repeat: REPEAT, blockSize: BS, rope: ROPE, rows };
const dir = join(root, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `lowrank-attention-${date}.json`);
writeFileSync(file, JSON.stringify(doc, null, 1) + '\n');
const md = [
  `# Decode attention, low-rank vs full-width keys: ${info.deviceName}, ${date}, commit ${doc.commit}`,
  '',
  `${H} query / ${HKV} KV heads, head dim ${D}, context ${CTX}, bf16 pages of ${BS}; bytes = K + V bytes read per step.`,
  '',
  '| shape | impl | µs | MB read | TB/s | speed-up vs full |',
  '|---|---|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.shape} | ${r.impl} | ${(r.seconds * 1e6).toFixed(1)} | ${(r.bytes / 1e6).toFixed(1)} | ${r.tbps.toFixed(2)} | ${r.speedupVsFull.toFixed(2)}x |`),
];
console.log(md.join('\n'));
console.log(`wrote ${file}`);
