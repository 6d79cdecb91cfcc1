/**
 * Every bad model directory gets one clear error — one line, naming the file and the tensor or
 * config field — and leaves nothing loaded: every native model created is disposed and every
 * file closed.
 */
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, type NativeModelHandle } from '../../lib/native.js';
import { loadEngine, readModelDir, type LoadEngineOptions } from '../../lib/hf/load.js';
import { ModelLoadError } from '../../lib/hf/errors.js';
import { PlanError } from '../../lib/plan/types.js';
import { CASES, type HfCase } from './cases.js';
import { checkpointTensors, openFilesUnder, tempRoot, tensor, writeModelDir, type DirContents } from './helpers.js';
import { rawFile, type StTensor } from './safetensors-writer.js';

const tmp = tempRoot();
afterAll(() => tmp.cleanup());

// Track every native model the engine creates, to check that a failed load disposes it.
type Ctor = new (...a: unknown[]) => NativeModelHandle;
const addon = loadAddon() as unknown as { NativeModel: Ctor };
const original = addon.NativeModel;
const created: NativeModelHandle[] = [];
beforeAll(() => {
  addon.NativeModel = class extends original {
    constructor(...a: unknown[]) {
      super(...a);
      created.push(this);
    }
  };
});
afterAll(() => {
  addon.NativeModel = original;
});
afterEach(() => {
  expect(created.every((m) => m.info().disposed)).toBe(true);
  expect(openFilesUnder(tmp.root)).toBe(0);
  created.length = 0;
});

const OPTS = { threads: 1, kvPages: 16 };
const llama = CASES.find((c) => c.name === 'llama')!;
const ext = CASES.find((c) => c.name === 'mixattn extension (llama)')!;
let n = 0;

/** A good directory of `c`, then changed by `edit` (on its contents before writing). */
function dirOf(c: HfCase, edit: (d: { config: Record<string, unknown>; tensors: StTensor[] }) => Partial<DirContents> | void = () => {}): string {
  const { hf } = checkpointTensors(c.cfg, c.plan, { storage: 'F32', gemma: c.gemma });
  const d = { config: { ...(c.published as Record<string, unknown>) }, tensors: [...hf] };
  const extra = edit(d) ?? {};
  return writeModelDir(tmp.dir(`d${n++}`), { ...d, ...extra });
}

interface Where {
  readonly file: string;
  readonly tensor?: string;
  readonly field?: string;
}

async function loadError(dir: string, where: Where, pattern: RegExp, opts: LoadEngineOptions = {}): Promise<void> {
  const err = await loadEngine(dir, { ...OPTS, ...opts }).then(
    (e) => (e.dispose(), undefined),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelLoadError);
  const e = err as ModelLoadError;
  expect(e.message).not.toContain('\n');
  expect(e.message).toMatch(pattern);
  expect(e.file).toBe(where.file);
  expect(e.message.startsWith(`${where.file}: `)).toBe(true);
  expect(e.tensor).toBe(where.tensor);
  if (where.tensor) expect(e.message).toContain(`'${where.tensor}'`);
  if (where.field) {
    expect(e.field).toBe(where.field);
    expect(e.message).toContain(where.field);
  }
}

const st = (dir: string) => join(dir, 'model.safetensors');
const cfgFile = (dir: string) => join(dir, 'config.json');
const Q = 'model.layers.1.self_attn.q_proj.weight';

describe('the directory and its JSON files', () => {
  it('missing directory, config.json, weights', async () => {
    const none = tmp.dir('nope');
    await loadError(none, { file: none }, /model directory does not exist/);
    await expect(readModelDir(none)).rejects.toThrow(ModelLoadError);
    const noConfig = dirOf(llama);
    rmSync(cfgFile(noConfig));
    await loadError(noConfig, { file: cfgFile(noConfig) }, /config\.json: is missing/);
    const noWeights = dirOf(llama);
    rmSync(st(noWeights));
    await loadError(noWeights, { file: noWeights }, /has no model\.safetensors or model\.safetensors\.index\.json/);
    await expect(readModelDir(noWeights)).rejects.toThrow(/has no model\.safetensors/);
  });

  it('invalid config.json and generation_config.json', async () => {
    const bad = dirOf(llama);
    writeFileSync(cfgFile(bad), '{"vocab_size": 41,');
    await loadError(bad, { file: cfgFile(bad) }, /is not valid JSON/);
    const gen = dirOf(llama, () => ({ generation: { top_p: 2 } }));
    await loadError(gen, { file: join(gen, 'generation_config.json'), field: 'top_p' }, /field 'top_p' must be a number in \(0, 1\]/);
  });

  it('unknown architecture, listing the supported ones', async () => {
    const dir = dirOf(llama, (d) => void (d.config.architectures = ['PhiForCausalLM'], d.config.model_type = 'phi'));
    await loadError(dir, { file: cfgFile(dir), field: 'architectures' }, /architecture 'PhiForCausalLM' with model_type 'phi': not a supported model; supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM/);
  });
});

describe('corrupt safetensors', () => {
  const corrupt = (bytes: Uint8Array) => {
    const dir = dirOf(llama);
    writeFileSync(st(dir), bytes);
    return dir;
  };
  const header = (entries: object, dataBytes = 64) => rawFile(JSON.stringify(entries), new Uint8Array(dataBytes));

  it('header length beyond the bound or the file', async () => {
    let dir = corrupt(rawFile('{}', new Uint8Array(0), 2n ** 40n));
    await loadError(dir, { file: st(dir) }, /header length 1099511627776 exceeds the 100000000-byte limit/);
    dir = corrupt(rawFile('{}', new Uint8Array(0), 4096n));
    await loadError(dir, { file: st(dir) }, /header length 4096 exceeds the 2 bytes after the length field/);
  });

  it('truncated file', async () => {
    const dir = dirOf(llama);
    const size = readFileSync(st(dir)).length;
    truncateSync(st(dir), size - 3);
    await loadError(dir, { file: st(dir), tensor: 'lm_head.weight' }, /outside the \d+-byte data section \(truncated or corrupt file\)/);
  });

  it('non-JSON header, overlapping tensors, offsets outside the data, size mismatch, unknown dtype', async () => {
    let dir = corrupt(rawFile('not json at all'));
    await loadError(dir, { file: st(dir) }, /safetensors header is not valid JSON/);
    dir = corrupt(header({ [Q]: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, 'model.norm.weight': { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }));
    await loadError(dir, { file: st(dir), tensor: 'model.norm.weight' }, /overlaps tensor 'model\.layers\.1\.self_attn\.q_proj\.weight'/);
    dir = corrupt(header({ [Q]: { dtype: 'F32', shape: [32], data_offsets: [0, 128] } }));
    await loadError(dir, { file: st(dir), tensor: Q }, /data_offsets \[0, 128\] outside the 64-byte data section/);
    dir = corrupt(header({ [Q]: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 32] } }));
    await loadError(dir, { file: st(dir), tensor: Q }, /is F32 \[4,4\] \(64 bytes\) but data_offsets \[0, 32\] span 32 bytes/);
    dir = corrupt(header({ [Q]: { dtype: 'Q4_0', shape: [4], data_offsets: [0, 4] } }));
    await loadError(dir, { file: st(dir), tensor: Q }, /unknown dtype "Q4_0"/);
  });
});

describe('weights that contradict config.json', () => {
  const swap = (name: string, f: (t: StTensor) => StTensor | undefined) => (d: { tensors: StTensor[] }) => {
    d.tensors = d.tensors.flatMap((t) => (t.name === name ? [f(t)].filter((x): x is StTensor => x !== undefined) : [t]));
  };

  it('unsupported dtype of a needed tensor', async () => {
    const dir = dirOf(llama, swap(Q, (t) => tensor(t.name, 'I64', [...t.shape])));
    await loadError(dir, { file: st(dir), tensor: Q }, /has dtype I64; only F32, F16, BF16 can be loaded/);
  });

  it('missing tensor', async () => {
    const up = 'model.layers.1.mlp.up_proj.weight';
    const dir = dirOf(llama, swap(up, () => undefined));
    await loadError(dir, { file: st(dir), tensor: up, field: 'num_hidden_layers' }, /tensor 'model\.layers\.1\.mlp\.up_proj\.weight' is missing/);
  });

  it('wrong shape, naming the config fields behind the expected one', async () => {
    const dir = dirOf(llama, swap(Q, (t) => ({ ...t, shape: [t.shape[1], t.shape[0]] })));
    await loadError(dir, { file: st(dir), tensor: Q }, /has shape \[24, 32\] but .*config\.json implies \[32, 24\] from \[num_attention_heads×head_dim = 4×8, hidden_size = 24\]/);
  });

  it('config fields that contradict the weights', async () => {
    let dir = dirOf(llama, (d) => void (d.config.intermediate_size = 48));
    await loadError(dir, { file: st(dir), tensor: 'model.layers.0.mlp.gate_proj.weight' }, /has shape \[40, 24\] but .* implies \[48, 24\] from \[intermediate_size = 48, hidden_size = 24\]/);
    dir = dirOf(llama, (d) => void (d.config.num_hidden_layers = 3));
    await loadError(dir, { file: st(dir), tensor: 'model.layers.3.input_layernorm.weight', field: 'num_hidden_layers' }, /belongs to layer 3 but .*config\.json has num_hidden_layers = 3/);
    dir = dirOf({ ...llama, cfg: { ...llama.cfg, tieWordEmbeddings: true } });
    await loadError(dir, { file: st(dir), tensor: 'lm_head.weight', field: 'tie_word_embeddings' }, /'lm_head\.weight' is missing \(.*tie_word_embeddings = false\)/);
    dir = dirOf(llama, (d) => void d.tensors.push(tensor('model.layers.0.self_attn.o_proj.bias', 'F32', [24])));
    await loadError(dir, { file: st(dir), tensor: 'model.layers.0.self_attn.o_proj.bias' }, /unexpected tensor .* a LlamaForCausalLM with this .*config\.json has no such weight/);
  });

  it('a sharded index pointing to a missing shard', async () => {
    const dir = dirOf(llama, () => ({ shards: 2 }));
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    const index = join(dir, 'model.safetensors.index.json');
    await loadError(dir, { file: index, tensor: 'model.layers.0.input_layernorm.weight' }, /lists shard 'model-00002-of-00002\.safetensors' .* does not exist/);
  });
});

describe('plans and failures during the load', () => {
  it('an override plan that makes a layer an owner the checkpoint has no K/V for', async () => {
    const dir = dirOf(ext);
    await loadError(
      dir,
      { file: st(dir), tensor: 'model.layers.2.self_attn.k_proj.weight', field: 'kv_sources' },
      /layer 2 owns its KV cache under plan 'standard' but the checkpoint has no K\/V for it: .* \(its config\.json kv_sources\[2\] = 1/,
      { plan: 'standard' },
    );
  });

  it('an override plan of the wrong size or invalid is a PlanError', async () => {
    const dir = dirOf(llama);
    await expect(loadEngine(dir, { ...OPTS, plan: '0 1 2' })).rejects.toThrow(PlanError);
    await expect(loadEngine(dir, { ...OPTS, plan: { name: 'x', layers: ext.plan.layers.slice(0, 4).map((l, i) => (i === 3 ? { ...l, kvSource: 2 } : l)) } })).rejects.toThrow(/layer 3/);
  });

  it('an error half-way through the stream disposes the native model', async () => {
    const dir = dirOf(llama);
    let calls = 0;
    const boom = () => {
      if (++calls === 5) throw new Error('stop here');
    };
    await expect(loadEngine(dir, { ...OPTS, onProgress: boom })).rejects.toThrow('stop here');
    expect(created.length).toBe(1);
  });
});
