/**
 * Programmatic dependent launch (native/cuda/launch.cuh) changes when kernels start, never what
 * they compute: an engine whose backend was created with MIXATTN_CUDA_PDL=0 and one with PDL
 * (the default; on sm_90+ GPUs) give bit-identical logits and argmax ids for prefill (whole
 * and chunked) and for decode steps replayed as CUDA graphs, on a full-width model (GQA,
 * sliding windows, shared KV) and a low-rank one (the low-rank kernels load their basis
 * before gridDepWait). Below sm_90 both engines run without PDL and the test checks nothing
 * more than determinism.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../lib/engine/engine.js';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { withKvRank } from '../../lib/plan/ranks.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { makeEngine } from '../engine/harness.js';
import { tokens } from './engine-compare.js';
import { SEED, TWIN, cudaAvailable, cudaInfo } from './twin.js';

const saved = { pdl: process.env.MIXATTN_CUDA_PDL, graphs: process.env.MIXATTN_CUDA_GRAPHS };
afterEach(() => {
  for (const [k, v] of [['MIXATTN_CUDA_PDL', saved.pdl], ['MIXATTN_CUDA_GRAPHS', saved.graphs]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** An engine whose backend is created with MIXATTN_CUDA_PDL set to `pdl` (undefined: unset). */
function engineWith(pdl: string | undefined, cfg: ModelConfig, plan: LayerPlan): Engine {
  if (pdl === undefined) delete process.env.MIXATTN_CUDA_PDL;
  else process.env.MIXATTN_CUDA_PDL = pdl;
  try {
    return makeEngine(cfg, plan, { seed: SEED % 100000, dtype: 'bf16', backend: TWIN, kvDtype: 'bf16', kvPages: 1024, blockSize: 16 });
  } finally {
    if (saved.pdl === undefined) delete process.env.MIXATTN_CUDA_PDL;
    else process.env.MIXATTN_CUDA_PDL = saved.pdl;
  }
}

function sameBits(a: Float32Array, b: Float32Array, what: string) {
  expect(a.length, what).toBeGreaterThan(0);
  expect(a.every(Number.isFinite), what).toBe(true);
  expect(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)), what).toBe(0);
}

/**
 * Prefill whole and in chunks, then 12 decode steps (graphs on: one capture, then replays; the
 * 512-key table stride gives split-KV decode, merged in the kernels' last blocks): every logit
 * and id bit for bit.
 */
async function expectPdlInvariant(cfg: ModelConfig, plan: LayerPlan) {
  process.env.MIXATTN_CUDA_GRAPHS = '1';
  using on = engineWith(undefined, cfg, plan);
  using off = engineWith('0', cfg, plan);
  const lengths = [300, 37, 1, 130];
  const seqs = lengths.map(() => ({ on: on.addSequence(), off: off.addSequence() }));
  // sequence 0 in chunks of 64 (prefill steps with history), the others whole, in one step
  const prompts = lengths.map((n, i) => tokens(n, cfg.vocabSize, i + 1));
  for (let start = 0; start < 300; start += 64) {
    const entries = (side: 'on' | 'off') => [
      { seq: seqs[0][side], tokens: prompts[0].slice(start, start + 64) },
      ...(start === 0 ? seqs.slice(1).map((s, i) => ({ seq: s[side], tokens: prompts[i + 1] })) : []),
    ];
    const a = await on.step(entries('on'));
    const b = await off.step(entries('off'));
    expect(a).toHaveLength(b.length);
    for (let i = 0; i < a.length; i++) sameBits(a[i], b[i], `prefill from ${start}, entry ${i}`);
  }
  let next = seqs.map((_, i) => (i * 7 + 3) % cfg.vocabSize);
  for (let step = 0; step < 12; step++) {
    const entries = (side: 'on' | 'off') => seqs.map((s, i) => ({ seq: s[side], tokens: [next[i]] }));
    if (step % 2) {
      const a = await on.step(entries('on'), { output: 'argmax' });
      const b = await off.step(entries('off'), { output: 'argmax' });
      expect(a.map((x) => Array.from(x)), `decode step ${step}`).toEqual(b.map((x) => Array.from(x)));
      next = a.map((x) => x[0]);
    } else {
      const a = await on.step(entries('on'));
      const b = await off.step(entries('off'));
      for (let i = 0; i < a.length; i++) sameBits(a[i], b[i], `decode step ${step}, seq ${i}`);
      next = a.map((row) => {
        let best = 0;
        for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
        return best;
      });
    }
  }
}

describe.skipIf(!cudaAvailable)(`programmatic dependent launch on vs off (${TWIN}: ${cudaInfo.deviceName || 'cpu'}, seed ${SEED})`, () => {
  const cfg = llamaConfig({ vocabSize: 512, hiddenSize: 256, intermediateSize: 512, numLayers: 4, numHeads: 8, numKvHeads: 2, headDim: 64 });

  it('full-width KV (ma preset, window 48): bit-identical logits and ids', async () => {
    await expectPdlInvariant(cfg, presetPlan('ma', cfg.numLayers, { window: 48 }));
  });

  it('low-rank KV (k24 v40 owners): bit-identical logits and ids', async () => {
    const plan = withKvRank(presetPlan('standard', cfg.numLayers), () => ({ k: 24, v: 40 }));
    await expectPdlInvariant(cfg, plan);
  });
});
