#!/usr/bin/env node
/**
 * Sampling benchmark: the time one decode step spends turning logits into tokens, on the
 * device (Backend::sample: upload the rows' policies and penalty pairs, sample, download ids
 * and logprobs) against the host path (download the [batch, vocab] fp32 logits, then
 * lib/sampling's Sampler per row), at vocab 128256 and batch 1, 16, 64, for three policies:
 * greedy; temperature + top-k + top-p; top-p + min-p + penalties + logprobs. The first step of
 * each case also checks that both paths pick the same tokens.
 *
 *   node bench/sampling.mjs --out bench/results          # CUDA (needs dist/: npx tsc -p tsconfig.json)
 *   node bench/sampling.mjs --smoke                      # CPU backend, small, a few seconds
 *
 * Writes sampling-<date>.json and sampling-<date>.md under --out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CpuReducer, Prng, Sampler, packSampling } from '../dist/lib/index.js';
import { loadAddon } from '../dist/lib/native.js';
import { gitCommit } from '../dist/lib/cli/bench.js';

const { values: a } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    backend: { type: 'string' },
    vocab: { type: 'string' },
    batches: { type: 'string' },
    repeat: { type: 'string' },
    out: { type: 'string' },
    tag: { type: 'string' },
  },
});
const S = {
  backend: a.backend ?? (a.smoke ? 'cpu' : 'cuda'),
  vocab: Number(a.vocab ?? (a.smoke ? 32000 : 128256)),
  batches: (a.batches ?? (a.smoke ? '1,4' : '1,16,64')).split(',').map(Number),
  repeat: Number(a.repeat ?? (a.smoke ? 3 : 50)),
  out: a.out,
};
const PROMPT = 512; // prompt tokens in each row's penalty history
const GENERATED = 64; // tokens generated so far

const POLICIES = {
  greedy: { temperature: 0 },
  'top-k/top-p': { temperature: 0.8, topK: 50, topP: 0.95 },
  'top-p/min-p/penalties/logprobs': { temperature: 1, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.3, frequencyPenalty: 0.2, logprobs: true, topLogprobs: 5 },
};

const addon = loadAddon();
const log = (m) => console.log(`sampling: ${m}`);

function randomLogits(rows, V, seed) {
  const rng = new Prng(seed);
  const out = new Float32Array(rows * V);
  for (let i = 0; i < out.length; i++) out[i] = 3 * rng.normal();
  return out;
}

/** Samplers mid-generation: PROMPT prompt tokens, GENERATED tokens already sampled. */
function samplers(params, rows, V, seed) {
  return Array.from({ length: rows }, (_, r) => {
    const rng = new Prng(seed + r);
    const promptIds = Array.from({ length: PROMPT }, () => Math.floor(rng.uniform() * V));
    const s = new Sampler({ ...params, seed: seed + r }, { vocabSize: V, promptIds, reducer: sharedReducer(V) });
    for (let i = 0; i < GENERATED; i++) s.history.push(Math.floor(rng.uniform() * V));
    return s;
  });
}
let reducer;
const sharedReducer = (V) => (reducer ??= new CpuReducer(V));

function runCase(name, params, B) {
  const V = S.vocab;
  const logits = randomLogits(B, V, 1000 + B);
  const dev = samplers(params, B, V, 7);
  const host = samplers(params, B, V, 7);
  const packed = packSampling(dev.map((s) => s.deviceSampling()));
  const op = addon.runOp(S.backend, 'sample', { logits: logits.slice(), rows: B, vocab: V, ...packed, repeat: S.repeat });
  // Host: the same rows through the TypeScript sampler (the first step: the same tokens).
  const rows = Array.from({ length: B }, (_, r) => logits.subarray(r * V, (r + 1) * V));
  const first = rows.map((row, r) => host[r].sample(row).token);
  const agree = first.every((t, r) => t === op.ids[r]);
  const reps = Math.max(2, Math.min(S.repeat, Math.ceil(2000 / (B * 5))));
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) for (let r = 0; r < B; r++) host[r].sample(rows[r]);
  const hostSampleMs = (performance.now() - t0) / reps;
  const deviceMs = op.seconds * 1000;
  const downloadMs = op.downloadSeconds * 1000;
  const hostMs = downloadMs + hostSampleMs;
  const c = { policy: name, batch: B, deviceMs, downloadMs, hostSampleMs, hostMs, speedup: hostMs / deviceMs, tokensAgree: agree };
  log(`${name.padEnd(32)} batch ${String(B).padStart(3)}: device ${deviceMs.toFixed(3)} ms/step, host ${hostMs.toFixed(3)} ms (download ${downloadMs.toFixed(3)} + sample ${hostSampleMs.toFixed(3)}), ${c.speedup.toFixed(1)}x, tokens agree: ${agree}`);
  return c;
}

function deviceName() {
  if (S.backend !== 'cuda') return `cpu (${S.backend})`;
  try {
    return execSync('nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split('\n')[0];
  } catch {
    return addon.backendInfo().cuda.deviceName;
  }
}

const result = {
  date: new Date().toISOString(),
  device: deviceName(),
  commit: gitCommit(),
  backend: S.backend,
  vocab: S.vocab,
  repeat: S.repeat,
  history: { promptTokens: PROMPT, generatedTokens: GENERATED },
  cases: [],
};
log(`device: ${result.device}; commit ${result.commit}; vocab ${S.vocab}; batches ${S.batches.join(', ')}`);
for (const [name, params] of Object.entries(POLICIES)) for (const B of S.batches) result.cases.push(runCase(name, params, B));
if (result.cases.some((c) => !c.tokensAgree)) {
  console.error('sampling: the device and the host picked different tokens');
  process.exitCode = 1;
}

if (S.out) {
  mkdirSync(S.out, { recursive: true });
  const stem = `sampling-${result.date.slice(0, 10)}${a.tag ? `-${a.tag}` : ''}`;
  writeFileSync(join(S.out, `${stem}.json`), JSON.stringify(result, null, 2) + '\n');
  const L = [
    `# Sampling benchmark, ${result.device}, ${result.date}, commit ${result.commit}`,
    '',
    `Per decode step, vocab ${S.vocab}, each row with a ${PROMPT}-token prompt and ${GENERATED} generated tokens. Device: upload the policies and penalty pairs, Backend::sample, download ids and logprobs. Host: download the fp32 logits, then lib/sampling per row.`,
    '',
    '| policy | batch | device ms | host ms (download + sample) | speedup | same tokens |',
    '|---|---:|---:|---:|---:|:---:|',
    ...result.cases.map((c) => `| ${c.policy} | ${c.batch} | ${c.deviceMs.toFixed(3)} | ${c.hostMs.toFixed(2)} (${c.downloadMs.toFixed(2)} + ${c.hostSampleMs.toFixed(2)}) | ${c.speedup.toFixed(1)}x | ${c.tokensAgree ? 'yes' : 'NO'} |`),
    '',
  ];
  writeFileSync(join(S.out, `${stem}.md`), L.join('\n'));
  log(`wrote ${join(S.out, stem)}.{json,md}`);
}
