#!/usr/bin/env node
// Stress for a wrong first step (seen twice in test/gpu/hf.test.ts: the "whole" prefill of a
// fresh CUDA engine, rel err ~1): loads each HF fixture into a fresh CUDA engine many times,
// runs the whole prompts in one step, and compares every row's logits with the CPU engine's.
// Prints the failures per fixture; exit 1 when any. Knobs from the environment, so each
// suspect can be switched off in its own process: MIXATTN_CUDA_GEMV=0 (cuBLASLt for skinny
// matmuls), MIXATTN_CUDA_ATTENTION=generic|decode|prefill[:N], MIXATTN_CUDA_GRAPHS=0.
//   node test/gpu/first-step-stress.mjs [iterations per fixture (default 40)] [fixture ...]
// Needs dist/ (npx tsc -p tsconfig.json) and the CUDA addon.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadEngine, readModelDir } from '../../dist/lib/hf/load.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));
const iterations = Number(process.argv[2] ?? 40);
const names = process.argv.length > 3 ? process.argv.slice(3) : readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, 'expected.json'))).sort();

async function wholeLogits(engine, seqs) {
  const ids = seqs.map(() => engine.addSequence());
  try {
    return await engine.step(seqs.map((tokens, i) => ({ seq: ids[i], tokens, logits: 'all' })));
  } finally {
    for (const id of ids) engine.releaseSequence(id);
  }
}

function relErr(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

let failures = 0;
for (const name of names) {
  const dir = join(FIXTURES, name);
  const e = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const seqs = e.prompts.map((p) => p.ids);
  const md = await readModelDir(dir);
  let ref;
  const cpu = await loadEngine(md, { backend: 'cpu', kvPages: 256, threads: 2 });
  try {
    ref = await wholeLogits(cpu, seqs);
  } finally {
    cpu.dispose();
  }
  const bad = [];
  let worstOk = 0;
  for (let it = 0; it < iterations; it++) {
    const gpu = await loadEngine(md, { backend: process.env.STRESS_BACKEND ?? 'cuda', kvPages: 256, threads: 2 });
    let got;
    try {
      got = await wholeLogits(gpu, seqs);
    } finally {
      gpu.dispose();
    }
    got.forEach((g, i) => {
      const err = relErr(g, ref[i]);
      if (!(err <= 0.1)) bad.push(`iter ${it} prompt ${i}: ${err.toFixed(3)}`);
      else worstOk = Math.max(worstOk, err);
    });
  }
  failures += bad.length;
  console.log(`${name}: ${bad.length} bad of ${iterations * seqs.length} (worst good ${worstOk.toExponential(2)})${bad.length ? ': ' + bad.slice(0, 6).join('; ') : ''}`);
}
console.log(`env: GEMV=${process.env.MIXATTN_CUDA_GEMV ?? '1'} ATTENTION=${process.env.MIXATTN_CUDA_ATTENTION ?? 'auto'}; ${failures} failures`);
process.exit(failures ? 1 : 0);
