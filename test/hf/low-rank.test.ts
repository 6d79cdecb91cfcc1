/**
 * Low-rank K/V checkpoints (config.json `eigen_attention`, docs/hf.md "Low-rank K/V checkpoints"): a model
 * directory written here from random weights loads and matches the float64 reference, plan
 * overrides may change windows but not kv sources, and every bad config or tensor gets one
 * clear error naming the file and the field or tensor.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, readModelDir, type LoadEngineOptions } from '../../lib/hf/load.js';
import { ModelLoadError } from '../../lib/hf/errors.js';
import { PlanError, type LayerPlan } from '../../lib/plan/types.js';
import { referenceForward } from '../reference/transformer64.js';
import { relDiff } from '../reference/helpers.js';
import { engineLogits } from '../engine/harness.js';
import { checkpointTensors, openFilesUnder, tempRoot, tensor, writeModelDir } from './helpers.js';
import { cfg, config, K_RANKS, layers, lowRankCheckpoint, plan, V_RANKS } from './low-rank-dir.js';
import type { StTensor } from './safetensors-writer.js';
import { join } from 'node:path';

const tmp = tempRoot();
afterAll(() => tmp.cleanup());
let n = 0;

const PROMPTS = [[3, 17, 5, 40, 22, 9, 1, 33, 12, 28, 7, 19, 4], [8, 2, 30, 11]];
const OPTS = { threads: 2, kvPages: 64 };

async function expectReference(dir: string, runPlan: LayerPlan, ref: Map<string, Float32Array | Float64Array>, load: LoadEngineOptions = {}, tol = 1e-4): Promise<void> {
  using engine = await loadEngine(dir, { ...OPTS, ...load });
  expect(engine.plan.layers).toEqual(runPlan.layers);
  const got = await engineLogits(engine, PROMPTS, [{ chunk: 5 }, 'decode']);
  PROMPTS.forEach((p, i) => expect(relDiff(got[i], referenceForward(cfg, runPlan, ref, p))).toBeLessThan(tol));
}

describe('low-rank checkpoints load and match the reference', () => {
  for (const storage of ['F32', 'BF16'] as const) {
    it(`keys at rank, values at rank, full-width keys in a basis (${storage}, 2 shards)`, async () => {
      const { hf, ref } = lowRankCheckpoint(storage);
      const dir = writeModelDir(tmp.dir(`ok${n++}`), { config: config(), tensors: hf, shards: 2 });
      const md = await readModelDir(dir);
      expect(md.eigenAttention).toEqual({ kRanks: K_RANKS, vRanks: V_RANKS, errorBudget: 0.025 });
      expect(md.plan.layers).toEqual(plan.layers);
      await expectReference(dir, plan, ref);
      expect(openFilesUnder(tmp.root)).toBe(0);
    });
  }

  it('plan overrides may change windows (notation or LayerPlan, ranks taken from the checkpoint)', async () => {
    const { hf, ref } = lowRankCheckpoint('F32');
    const dir = writeModelDir(tmp.dir(`ov${n++}`), { config: config(), tensors: hf });
    const narrower: LayerPlan = { name: 'custom', layers: plan.layers.map((l, i) => (i === 2 ? { ...l, attention: { kind: 'sliding', window: 2 } } : i === 5 ? { ...l, attention: { kind: 'sliding', window: 3 } } : l)) };
    await expectReference(dir, narrower, ref, { plan: '0 1s4 1s2 3s4 3s4 0s3' });
    const { kvRank: _, ...bare } = narrower.layers[3];
    await expectReference(dir, narrower, ref, { plan: { name: 'custom', layers: narrower.layers.map((l, i) => (i === 3 ? bare : l)) } });
  });

  it('plan overrides that change a kv source or a rank are refused, naming the layer', async () => {
    const { hf } = lowRankCheckpoint('F32');
    const dir = writeModelDir(tmp.dir(`ovbad${n++}`), { config: config(), tensors: hf });
    const refused = async (p: LoadEngineOptions['plan'], pattern: RegExp, layer: number) => {
      const err = await loadEngine(dir, { ...OPTS, plan: p }).then((e) => (e.dispose(), undefined), (e: unknown) => e);
      expect(err).toBeInstanceOf(PlanError);
      expect((err as PlanError).message).toMatch(pattern);
      expect((err as PlanError).layer).toBe(layer);
    };
    await refused('standard', /layer 2 reads layer 2, but in the low-rank checkpoint .* it reads layer 1 \(kv_sources\[2\]\); the kv sources of a low-rank checkpoint cannot change/, 2);
    await refused('0 1s4 1s4 3s4 1s4 0', /layer 4 reads layer 1, but .* it reads layer 3/, 4);
    await refused('0 1s4:k16v4 1s4:k16v4 3s4 3s4 0', /layer 1 has kvRank \{k: 16, v: 4\}, but the checkpoint's is \{k: 16, v: 3\}/, 1);
  });
});

interface Where {
  readonly file: string;
  readonly tensor?: string;
  readonly field?: string;
}

async function loadError(dir: string, where: Where, pattern: RegExp): Promise<void> {
  const err = await loadEngine(dir, OPTS).then((e) => (e.dispose(), undefined), (e: unknown) => e);
  expect(err).toBeInstanceOf(ModelLoadError);
  const e = err as ModelLoadError;
  expect(e.message).not.toContain('\n');
  expect(e.message).toMatch(pattern);
  expect(e.file).toBe(where.file);
  expect(e.tensor).toBe(where.tensor);
  if (where.field) {
    expect(e.field).toBe(where.field);
    expect(e.message).toContain(where.field);
  }
  expect(openFilesUnder(tmp.root)).toBe(0);
}

describe('bad low-rank checkpoints', () => {
  const dirWith = (cfgExtra: Record<string, unknown>, edit: (t: StTensor[]) => StTensor[] = (t) => t): string => {
    const { hf } = lowRankCheckpoint('F32');
    return writeModelDir(tmp.dir(`bad${n++}`), { config: config(cfgExtra), tensors: edit(hf) });
  };
  const eigen = (e: Record<string, unknown>) => ({ eigen_attention: { k_ranks: K_RANKS, v_ranks: V_RANKS, ...e } });
  const cfgOf = (dir: string) => join(dir, 'config.json');
  const st = (dir: string) => join(dir, 'model.safetensors');

  it('ranks: lengths, values out of range, missing lists, reader ranks that differ from their source', async () => {
    let dir = dirWith(eigen({ k_ranks: K_RANKS.slice(0, 5) }));
    await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention.k_ranks' }, /has 5 entries but num_hidden_layers=6/);
    for (const bad of [0, 17, 2.5, '8']) {
      dir = dirWith(eigen({ v_ranks: V_RANKS.map((r, i) => (i === 4 ? bad : r)) }));
      await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention.v_ranks' }, /entry 4 \(layer 4\) is .*; a rank must be an integer in \[1, head_dim = 16\]/);
    }
    dir = dirWith(eigen({ v_ranks: undefined }));
    await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention.v_ranks' }, /field 'eigen_attention\.v_ranks' is missing/);
    dir = dirWith(eigen({ k_ranks: [5, 16, 8, 9, 9, 5] }));
    await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention.k_ranks' }, /entry 2 is 8 but layer 2 reads layer 1's cache \(kv_sources\[2\] = 1\), whose rank is 16/);
    dir = dirWith({ eigen_attention: [8] });
    await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention' }, /must be an object/);
    dir = dirWith(eigen({ error_budget: -1 }));
    await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention.error_budget' }, /must be a positive number/);
  });

  it('models with q/k norms are refused', async () => {
    const dir = dirWith({ architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3' });
    await loadError(dir, { file: cfgOf(dir), field: 'eigen_attention' }, /this model has q\/k norms, which act on the full keys and cannot be folded/);
  });

  it('tensor shapes that contradict the ranks name the rank field', async () => {
    const K3 = 'model.layers.3.self_attn.k_proj.weight';
    let dir = dirWith({}, (ts) => ts.map((t) => (t.name === K3 ? tensor(K3, 'F32', [32, 24]) : t)));
    await loadError(dir, { file: st(dir), tensor: K3 }, /has shape \[32, 24\] but .* implies \[18, 24\] from \[num_key_value_heads×eigen_attention\.k_ranks\[3\] = 2×9, hidden_size = 24\]/);
    const O2 = 'model.layers.2.self_attn.o_proj.weight';
    dir = dirWith({}, (ts) => ts.map((t) => (t.name === O2 ? tensor(O2, 'F32', [24, 64]) : t)));
    await loadError(dir, { file: st(dir), tensor: O2 }, /implies \[24, 12\] from \[hidden_size = 24, num_attention_heads×eigen_attention\.v_ranks\[2\] = 4×3\]/);
    const U0 = 'model.layers.0.self_attn.k_up.weight';
    dir = dirWith({}, (ts) => ts.map((t) => (t.name === U0 ? tensor(U0, 'F32', [16, 6]) : t)));
    await loadError(dir, { file: st(dir), tensor: U0 }, /has shape \[16, 6\] but .* implies \[16, 5\] from \[head_dim = 16, eigen_attention\.k_ranks\[0\] = 5\]/);
    const U1 = 'model.layers.1.self_attn.k_up.weight';
    dir = dirWith({}, (ts) => ts.map((t) => (t.name === U1 ? tensor(U1, 'F32', [16, 8]) : t)));
    await loadError(dir, { file: st(dir), tensor: U1, field: 'eigen_attention.k_ranks' }, /has shape \[16, 8\] but .* implies \[16, 16\]/);
  });

  it('a key basis missing, on a reader, or without eigen_attention', async () => {
    const U0 = 'model.layers.0.self_attn.k_up.weight';
    let dir = dirWith({}, (ts) => ts.filter((t) => t.name !== U0));
    await loadError(dir, { file: st(dir), tensor: U0, field: 'eigen_attention.k_ranks' }, /is missing: layer 0 keeps its keys at rank 5 < head_dim = 16 .* and needs their basis/);
    const U2 = 'model.layers.2.self_attn.k_up.weight';
    dir = dirWith({}, (ts) => [...ts, tensor(U2, 'F32', [16, 16])]);
    await loadError(dir, { file: st(dir), tensor: U2, field: 'kv_sources' }, /unexpected tensor .*: layer 2 reads layer 1's cache \(kv_sources\[2\] = 1\); only the layer that owns a cache has its key basis/);
    // a full-width checkpoint with a basis tensor
    const full: LayerPlan = { name: 'checkpoint', layers };
    const { hf } = checkpointTensors(cfg, full, { storage: 'F32', gemma: false });
    dir = writeModelDir(tmp.dir(`bad${n++}`), { config: config({ eigen_attention: undefined }), tensors: [...hf, tensor(U2.replace('2', '3'), 'F32', [16, 16])] });
    await loadError(dir, { file: st(dir), tensor: 'model.layers.3.self_attn.k_up.weight', field: 'eigen_attention' }, /a key basis belongs to low-rank keys, but .*config\.json has no eigen_attention/);
  });
});
