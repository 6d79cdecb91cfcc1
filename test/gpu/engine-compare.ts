/**
 * Whole-model comparison shared by the GPU model tests: the same seeded bf16 weights in an
 * engine on the twin under test (bf16 KV) and on the CPU (f32 KV), fed the same prompts on the
 * same schedules; the relative error over every logit.
 */
import { expect } from 'vitest';
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { engineLogits, makeEngine, type Schedule } from '../engine/harness.js';
import { SEED, TWIN, relErr } from './twin.js';

function flat(rows: Float64Array[][]): Float64Array {
  const n = rows.reduce((a, r) => a + r.reduce((b, x) => b + x.length, 0), 0);
  const out = new Float64Array(n);
  let o = 0;
  for (const seq of rows) for (const r of seq) out.set(r, (o += r.length) - r.length);
  return out;
}

/** ‖twin − cpu‖/‖cpu‖ over all logits; the twin's engine must have returned every page. */
export async function twinVsCpu(cfg: ModelConfig, plan: LayerPlan, prompts: number[][], schedules: Schedule[]): Promise<number> {
  const seed = SEED % 100000;
  using gpu = makeEngine(cfg, plan, { seed, dtype: 'bf16', backend: TWIN, kvDtype: 'bf16', kvPages: 256, blockSize: 16 });
  using cpu = makeEngine(cfg, plan, { seed, dtype: 'bf16', backend: 'cpu', kvDtype: 'f32', kvPages: 256, blockSize: 16 });
  const got = await engineLogits(gpu, prompts, schedules);
  const ref = await engineLogits(cpu, prompts, schedules);
  expect(gpu.blocks.usedPages).toBe(0);
  return relErr(flat(got), flat(ref));
}

/** n token ids below vocab, different per salt and per run seed. */
export const tokens = (n: number, vocab: number, salt: number) => Array.from({ length: n }, (_, i) => (i * 31 + salt * 17 + (SEED % 97)) % vocab);
