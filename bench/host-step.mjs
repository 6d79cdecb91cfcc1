#!/usr/bin/env node
/**
 * The host's share of a batch-1 greedy decode step, without a GPU. `mixattn bench --backend
 * cuda --batches 1` spends ~180 µs per step on the host between one step's last kernel and the
 * next one's first; this times that path's parts on the CPU backend with a model of the bench
 * model's shape where the host sees it (24 layers of plan standard: one cache class of 24 pages
 * per block; blocks of 16; a 4096-token context, prefix cache off) and tiny widths, so the
 * native compute is negligible next to what is timed:
 *
 *   js step      Engine.step(..., { output: 'argmax' }) with the native forward replaced by an
 *                already resolved promise: validation, reserveBatch, packing, commit, slicing.
 *   forward call NativeModel.forward's synchronous part at the bench's table size (reading and
 *                copying the step's typed arrays, queueing the worker).
 *   worker hop   await native.forward(step) on a step the runner rejects in the worker (the
 *                AsyncWorker's hop to the libuv pool and back and the promise, no forward).
 *   round trip   await native.forward(step) on a 1-token context (the hop, and a tiny CPU
 *                forward: bench/host-step-runner.cc prints its compute time).
 *   engine step  Engine.step end to end on a 1-token context (all of the above but the table).
 *
 * The runner's own bookkeeping on the CUDA decode path (graph buckets, metadata) is timed by
 * bench/host-step-runner.cc (a null backend). Medians of --steps calls after a warm-up.
 *
 *   npx tsc -p tsconfig.json && node bench/host-step.mjs [--steps 4000]
 */
import { parseArgs } from 'node:util';
import { Engine, llamaConfig, fastWeights, resolvePlan } from '../dist/lib/index.js';

const { values: a } = parseArgs({ options: { steps: { type: 'string' } } });
const STEPS = Number(a.steps ?? 4000);
const CONTEXT = 4096;

const cfg = llamaConfig({ vocabSize: 16, hiddenSize: 8, intermediateSize: 8, numLayers: 24, numHeads: 1, numKvHeads: 1, headDim: 8 });
const plan = resolvePlan('standard', cfg.numLayers, { headDim: cfg.headDim });
const newEngine = () =>
  Engine.create(cfg, plan, fastWeights(cfg, plan, 1), { backend: 'cpu', threads: 1, kvPages: 64 * 24, blockSize: 16, prefixCache: false });

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s[s.length >> 1];
}

const ROUNDS = 5;

/**
 * µs per call of `fn` (its whole time, or the µs it returns): STEPS/4 warm-up calls, then
 * ROUNDS rounds of STEPS/ROUNDS calls; the lowest round median (other processes' load on a
 * shared machine only ever adds).
 */
async function time(fn, steps = STEPS) {
  for (let i = 0; i < steps / 4; i++) await fn();
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const us = [];
    for (let i = 0; i < steps / ROUNDS; i++) {
      const t0 = performance.now();
      const own = await fn();
      us.push(typeof own === 'number' ? own : (performance.now() - t0) * 1000);
    }
    best = Math.min(best, median(us));
  }
  return best;
}

const results = {};

// js step: the engine's JS with a native forward that resolves at once (only the first row's
// id is read). The sequence is prefilled by the same stub: nothing is computed.
{
  const engine = Engine.create(cfg, plan, fastWeights(cfg, plan, 1), {
    backend: 'cpu', threads: 1, kvPages: Math.ceil((CONTEXT + 2 * STEPS) / 16) * 24 + 24, blockSize: 16, prefixCache: false,
  });
  const real = engine.native;
  const ids = new Int32Array(1);
  engine.native = { forward: () => Promise.resolve(ids), dispose: () => real.dispose() };
  const seq = engine.addSequence();
  for (let done = 0; done < CONTEXT; done += 1024) await engine.step([{ seq, tokens: new Array(1024).fill(1) }], { output: 'argmax' });
  // forward call: the real native's synchronous part on the step the engine packs at this length.
  const { step } = engine.prepare([{ seq, tokens: [1] }], 'step');
  const argmaxStep = { ...step, output: 'argmax' };
  // Each forward is a decode step at this length, ~1 ms of CPU attention, awaited untimed.
  results['forward call'] = await time(async () => {
    const t0 = performance.now();
    const p = real.forward(argmaxStep);
    const us = (performance.now() - t0) * 1000;
    await p;
    return us;
  }, Math.min(STEPS, 1000));
  results['table ints'] = step.tables[0].length;
  let next = 1;
  results['js step'] = await time(async () => {
    const out = await engine.step([{ seq, tokens: [next] }], { output: 'argmax' });
    next = out[0][0] + 1;
  });
  engine.dispose();
}

// round trip and engine step on a 1-token context: the sequence is dropped and re-added.
{
  const engine = newEngine();
  const native = engine.native;
  let seq = engine.addSequence();
  const { step } = engine.prepare([{ seq, tokens: [1] }], 'step');
  const argmaxStep = { ...step, output: 'argmax' };
  results['round trip'] = await time(() => native.forward(argmaxStep));
  // The same hop with no forward: a logit row outside the step fails the runner's validation
  // in the worker (the promise rejects; nothing is computed).
  const failing = { ...argmaxStep, logitRows: Int32Array.of(1) };
  results['worker hop'] = await time(() => native.forward(failing).catch(() => {}));
  results['engine step'] = await time(async () => {
    await engine.step([{ seq, tokens: [1] }], { output: 'argmax' });
    engine.releaseSequence(seq);
    seq = engine.addSequence();
  });
  engine.dispose();
}

console.log(`host-step: median µs per call over ${STEPS} calls (table ${results['table ints']} ints at context ${CONTEXT})`);
for (const k of ['js step', 'forward call', 'worker hop', 'round trip', 'engine step']) console.log(`  ${k.padEnd(13)} ${results[k].toFixed(1)}`);
