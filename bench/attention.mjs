#!/usr/bin/env node
// Our CUDA attention on the benchmark shapes (bench/attention.py lists them and runs the
// peers): times each through the addon's runOp with `repeat` (the op enqueued `repeat` times
// between two synchronizations, after one untimed run), K/V in paged bf16 blocks of 16 tokens
// reached through a shuffled block table, inputs made from seeds in native code.
// Usage: node bench/attention.mjs '<shapes JSON>'  → JSON lines on stdout.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = createRequire(import.meta.url)('node-gyp-build')(root);
const shapes = JSON.parse(process.argv[2]);
const BS = 16;

for (const s of shapes) {
  // s: {name, kind: 'prefill'|'decode', batch, ctx, heads, kvHeads, dim, window, repeat, path?}
  const past = s.kind === 'decode' ? s.ctx - 1 : 0;
  const numNew = s.kind === 'decode' ? 1 : s.ctx;
  const blocksPerSeq = Math.ceil(s.ctx / BS);
  const numPages = blocksPerSeq * s.batch;
  const perm = Int32Array.from({ length: numPages }, (_, i) => i);
  for (let i = numPages - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const args = {
    kv: { dtype: 'bf16', numPages, blockSize: BS, numKvHeads: s.kvHeads, kDim: s.dim, vDim: s.dim, pagesPerBlock: 1, slot: 0, tableStride: blocksPerSeq, tables: perm, arena: 7 },
    numNew: new Int32Array(s.batch).fill(numNew),
    pastLen: new Int32Array(s.batch).fill(past),
    q: 11,
    numHeads: s.heads,
    window: s.window,
    scale: 1 / Math.sqrt(s.dim),
    softcap: 0,
    repeat: s.repeat,
    ...(s.path ? { path: s.path } : {}),
  };
  const t = [];
  for (let i = 0; i < 2; i++) t.push(addon.runOp('cuda', 'attention', args).seconds);
  t.sort((a, b) => a - b);
  console.log(JSON.stringify({ name: s.name, impl: s.path ? `mixattn-${s.path}` : "mixattn", seconds: t[0] }));
}
