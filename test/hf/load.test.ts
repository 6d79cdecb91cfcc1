/**
 * loadEngine on model directories of every architecture, in both config formats and with the
 * MixAttention extension: the engine it builds gives the same logits as an Engine built
 * directly from the canonical weights the directory was written from.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions, type WeightTensor } from '../../lib/engine/engine.js';
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { parsePlan } from '../../lib/plan/notation.js';
import { loadEngine, readModelDir } from '../../lib/hf/load.js';
import { engineLogits } from '../engine/harness.js';
import { CASES } from './cases.js';
import { checkpointTensors, tempRoot, writeModelDir, type Storage } from './helpers.js';

const tmp = tempRoot();
afterAll(() => tmp.cleanup());

const OPTS: EngineOptions = { threads: 2, kvPages: 64 };
const PROMPT = [3, 17, 5, 40, 22, 9, 1, 33, 12, 28, 7, 19];

async function logitsOf(engine: Engine): Promise<Float64Array[]> {
  try {
    const [rows] = await engineLogits(engine, [PROMPT], [{ chunk: 5 }]);
    return rows;
  } finally {
    engine.dispose();
  }
}

function maxAbsDiff(a: readonly Float64Array[], b: readonly Float64Array[]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  a.forEach((row, p) => row.forEach((x, j) => (m = Math.max(m, Math.abs(x - b[p][j])))));
  return m;
}

async function expectSameLogits(dir: string, cfg: ModelConfig, plan: LayerPlan, expected: readonly WeightTensor[], load: Parameters<typeof loadEngine>[1] = {}): Promise<void> {
  const got = await logitsOf(await loadEngine(dir, { ...OPTS, ...load }));
  const want = await logitsOf(Engine.create(cfg, plan, expected, OPTS));
  expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-6);
}

describe('loadEngine: every architecture, both config formats', () => {
  for (const c of CASES) {
    for (const format of ['published', 'v5'] as const) {
      it(`${c.name} (${format} config)`, async () => {
        const { hf, expected } = checkpointTensors(c.cfg, c.plan, { storage: 'F32', gemma: c.gemma });
        const dir = writeModelDir(tmp.dir(`${c.name}-${format}`), { config: c[format], tensors: hf });
        const md = await readModelDir(dir);
        expect(md.architecture).toBe(c.architecture);
        expect(md.config).toEqual(c.cfg);
        expect(md.plan.layers).toEqual(c.plan.layers);
        expect(md.mixattn).toBe(c.name.startsWith('mixattn'));
        await expectSameLogits(dir, c.cfg, c.plan, expected);
      });
    }
  }
});

describe('loadEngine: storage types, shards, progress', () => {
  const byName = (n: string) => CASES.find((c) => c.name === n)!;
  const storages: [string, Storage][] = [['llama', 'BF16'], ['qwen2', 'F16'], ['gemma2', 'BF16'], ['gemma3', 'F16']];
  for (const [name, storage] of storages) {
    it(`${name} stored as ${storage}`, async () => {
      const c = byName(name);
      const { hf, expected } = checkpointTensors(c.cfg, c.plan, { storage, gemma: c.gemma });
      const dir = writeModelDir(tmp.dir(`${name}-${storage}`), { config: c.v5, tensors: hf });
      await expectSameLogits(dir, c.cfg, c.plan, expected);
    });
  }

  it('a sharded checkpoint loads like a single file, reporting progress up to the total', async () => {
    const c = byName('mixattn extension (gemma3)');
    const { hf, expected } = checkpointTensors(c.cfg, c.plan, { storage: 'F32', gemma: true });
    const dir = writeModelDir(tmp.dir('sharded'), { config: c.published, tensors: hf, shards: 3 });
    const seen: [number, number, string][] = [];
    await expectSameLogits(dir, c.cfg, c.plan, expected, { onProgress: (l, t, n) => seen.push([l, t, n]) });
    const total = hf.reduce((n, t) => n + t.bytes.length, 0);
    expect(seen.length).toBe(hf.length);
    expect(seen.every(([, t]) => t === total)).toBe(true);
    expect(seen.map(([l]) => l)).toEqual([...seen.map(([l]) => l)].sort((a, b) => a - b));
    expect(seen.at(-1)![0]).toBe(total);
    expect(new Set(seen.map(([, , n]) => n))).toEqual(new Set(hf.map((t) => t.name)));
  });
});

describe('loadEngine: running a checkpoint under another plan', () => {
  const c = CASES.find((x) => x.name === 'qwen3')!;
  const { hf } = checkpointTensors(c.cfg, c.plan, { storage: 'F32', gemma: false });
  const dir = writeModelDir(tmp.dir('override'), { config: c.published, tensors: hf });

  it('skips the K/V weights of layers that become readers (LayerPlan or notation)', async () => {
    const plan = parsePlan('0 1s4 1s4', { name: 'shared' });
    // Random weights depend only on (seed, name): the owners' K/V are those of the checkpoint.
    const { expected } = checkpointTensors(c.cfg, plan, { storage: 'F32', gemma: false });
    await expectSameLogits(dir, c.cfg, plan, expected, { plan });
    await expectSameLogits(dir, c.cfg, plan, expected, { plan: '0 1s4 1s4' });
  });

  it('accepts a preset name', async () => {
    const plan = presetPlan('cla2', 3);
    const { expected } = checkpointTensors(c.cfg, plan, { storage: 'F32', gemma: false });
    const engine = await loadEngine(dir, { ...OPTS, plan: 'cla2' });
    expect(engine.plan.layers).toEqual(plan.layers);
    engine.dispose();
    await expectSameLogits(dir, c.cfg, plan, expected, { plan: 'cla2' });
  });
});

describe('readModelDir', () => {
  it('reads special tokens and sampling defaults, generation_config.json first', async () => {
    const c = CASES[0];
    const dir = writeModelDir(tmp.dir('gen'), {
      config: { ...c.published, eos_token_id: 2, pad_token_id: 0 },
      tensors: [],
      tokenizer: true,
      generation: { eos_token_id: [2, 9, 2], bos_token_id: 1, do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.9, min_p: 0.05, repetition_penalty: 1.1, max_new_tokens: 64 },
    });
    const md = await readModelDir(dir);
    expect(md.generation).toEqual({
      eosTokenIds: [2, 9], bosTokenId: 1, padTokenId: 0, doSample: true, temperature: 0.6, topK: 20, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, maxNewTokens: 64,
    });
    expect(md.hasTokenizer).toBe(true);
    expect(md.dir).toBe(dir);
  });

  it('falls back to config.json for token ids and has no sampling defaults without generation_config.json', async () => {
    const dir = writeModelDir(tmp.dir('nogen'), { config: CASES[0].published, tensors: [] });
    const md = await readModelDir(dir);
    expect(md.generation).toEqual({ eosTokenIds: [2], bosTokenId: 1 });
    expect(md.hasTokenizer).toBe(false);
  });
});
