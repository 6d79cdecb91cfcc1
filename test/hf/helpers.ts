/**
 * Test model directories: canonical random weights (lib/model/random-weights.ts) renamed to
 * HF names and laid out as HF stores them (Gemma norms as w − 1), written with our own
 * safetensors writer, next to a config.json. The HF name table here is written out again on
 * purpose, independently of lib/hf/tensor-names.ts.
 */
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WeightTensor as EngineWeight } from '../../lib/engine/engine.js';
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { randomWeights } from '../../lib/model/random-weights.js';
import { bf16ToF32, f32ToBf16 } from '../../lib/model/bf16.js';
import { safetensorsBytes, type StDtype, type StTensor } from './safetensors-writer.js';

export type Storage = 'F32' | 'BF16' | 'F16';

const LAYER_NAMES: Record<string, string> = {
  attn_norm: 'input_layernorm.weight',
  post_attn_norm: 'post_attention_layernorm.weight',
  post_mlp_norm: 'post_feedforward_layernorm.weight',
  q_proj: 'self_attn.q_proj.weight',
  k_proj: 'self_attn.k_proj.weight',
  v_proj: 'self_attn.v_proj.weight',
  o_proj: 'self_attn.o_proj.weight',
  q_bias: 'self_attn.q_proj.bias',
  k_bias: 'self_attn.k_proj.bias',
  v_bias: 'self_attn.v_proj.bias',
  q_norm: 'self_attn.q_norm.weight',
  k_norm: 'self_attn.k_norm.weight',
  k_up: 'self_attn.k_up.weight',
  gate_proj: 'mlp.gate_proj.weight',
  up_proj: 'mlp.up_proj.weight',
  down_proj: 'mlp.down_proj.weight',
};

export function hfName(canonical: string, gemma: boolean): string {
  if (canonical === 'embed') return 'model.embed_tokens.weight';
  if (canonical === 'final_norm') return 'model.norm.weight';
  if (canonical === 'lm_head') return 'lm_head.weight';
  const [, i, what] = /^layers\.(\d+)\.(.+)$/.exec(canonical)!;
  const suffix = what === 'mlp_norm' ? (gemma ? 'pre_feedforward_layernorm.weight' : 'post_attention_layernorm.weight') : LAYER_NAMES[what];
  return `model.layers.${i}.${suffix}`;
}

const bytesOf = (a: Float32Array | Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The f16 bits and exact value nearest to x (normal and subnormal range; no overflow in tests). */
export function f16(x: number): { bits: number; value: number } {
  const sign = x < 0 || Object.is(x, -0) ? 1 : 0;
  const a = Math.abs(x);
  if (a === 0) return { bits: sign << 15, value: sign ? -0 : 0 };
  let e = Math.max(Math.floor(Math.log2(a)), -14);
  let m = Math.round(a / 2 ** (e - 10));
  if (m >= 2048) [e, m] = [e + 1, Math.round(a / 2 ** (e - 9))];
  if (m < 1024 && e > -14) [e, m] = [e - 1, Math.round(a / 2 ** (e - 11))];
  const bits = (sign << 15) | (m < 1024 ? m : ((e + 15) << 10) | (m - 1024));
  return { bits, value: (sign ? -1 : 1) * m * 2 ** (e - 10) };
}

/**
 * Random canonical weights for (cfg, plan) as an HF checkpoint stores them in `storage`, and
 * the engine weights the loader must produce from it.
 */
export function checkpointTensors(cfg: ModelConfig, plan: LayerPlan, opts: { storage: Storage; gemma: boolean; seed?: number }): { hf: StTensor[]; expected: EngineWeight[] } {
  const canonical = randomWeights(cfg, plan, { seed: opts.seed ?? 7, dtype: opts.storage === 'BF16' ? 'bf16' : 'f32' });
  const hf: StTensor[] = [];
  const expected: EngineWeight[] = [];
  for (const t of canonical) {
    const name = hfName(t.name, opts.gemma);
    const gemmaNorm = opts.gemma && t.name.endsWith('_norm');
    if (opts.storage === 'F16') {
      const q = Array.from(t.data, (x) => f16(gemmaNorm ? Math.fround(x - 1) : x));
      hf.push({ name, dtype: 'F16', shape: t.shape, bytes: bytesOf(Uint16Array.from(q, (v) => v.bits)) });
      const vals = Float32Array.from(q, (v) => (gemmaNorm ? v.value + 1 : v.value));
      expected.push({ name: t.name, shape: t.shape, dtype: 'f32', bytes: bytesOf(vals) });
    } else if (!gemmaNorm) {
      hf.push({ name, dtype: opts.storage, shape: t.shape, bytes: t.bytes });
      expected.push(t);
    } else if (opts.storage === 'F32') {
      // w − 1 is exact for w in [0.5, 2] (Sterbenz), so the loader's 1 + (w − 1) gives w back.
      hf.push({ name, dtype: 'F32', shape: t.shape, bytes: bytesOf(t.data.map((x) => x - 1)) });
      expected.push(t);
    } else {
      const stored = f32ToBf16(t.data.map((x) => x - 1));
      hf.push({ name, dtype: 'BF16', shape: t.shape, bytes: bytesOf(stored) });
      expected.push({ name: t.name, shape: t.shape, dtype: 'f32', bytes: bytesOf(bf16ToF32(stored).map((x) => x + 1)) });
    }
  }
  return { hf, expected };
}

export interface DirContents {
  readonly config: object;
  readonly tensors: readonly StTensor[];
  /** Split over this many shards with an index (default: one model.safetensors). */
  readonly shards?: number;
  readonly generation?: object;
  readonly tokenizer?: boolean;
}

/** Writes a model directory under `dir` (created). */
export function writeModelDir(dir: string, c: DirContents): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c.config, null, 2));
  if (c.generation) writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(c.generation));
  if (c.tokenizer) writeFileSync(join(dir, 'tokenizer.json'), '{}');
  const n = c.shards ?? 1;
  if (n === 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(c.tensors, { format: 'pt' }));
    return dir;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const part = c.tensors.filter((_, i) => i % n === s);
    for (const t of part) weightMap[t.name] = file;
    writeFileSync(join(dir, file), safetensorsBytes(part));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return dir;
}

/** A fresh temp root for a test file; `cleanup` removes it. */
export function tempRoot(): { root: string; dir: (name: string) => string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'mixattn-hf-'));
  return { root, dir: (name) => join(root, name), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** Files under `root` this process holds open (Linux; 0 elsewhere), to check that nothing is left open. */
export function openFilesUnder(root: string): number {
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return 0;
  }
  return fds.filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(root);
    } catch {
      return false;
    }
  }).length;
}

export const tensor = (name: string, dtype: StDtype, shape: number[], bytes?: Uint8Array): StTensor => ({
  name,
  dtype,
  shape,
  bytes: bytes ?? new Uint8Array(shape.reduce((a, b) => a * b, 1) * ({ F32: 4, F16: 2, BF16: 2, I64: 8, F64: 8, U8: 1 } as const)[dtype]),
});
