/**
 * Eigen calibration test models: random canonical weights (optionally given a known low-rank
 * K/V structure) written as an HF Llama / Qwen directory with the tiny byte-level BPE
 * tokenizer of test/fixtures, and deterministic English-like calibration text.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { randomWeights, type WeightTensor } from '../../lib/model/random-weights.js';
import { f32ToBf16, roundToBf16 } from '../../lib/model/bf16.js';
import { Prng } from '../../lib/model/prng.js';
import { hfName, writeModelDir } from '../hf/helpers.js';
import type { StTensor } from '../hf/safetensors-writer.js';

const TOKENIZER_DIR = fileURLToPath(new URL('../fixtures/tokenizer/tiny/', import.meta.url));

/** 4 layers, hidden 64, 4 heads (2 KV) of 32, vocab 300 (the tiny tokenizer's). */
export const tinyConfig = (extra: Partial<ModelConfig> = {}): ModelConfig =>
  llamaConfig({ vocabSize: 300, hiddenSize: 64, intermediateSize: 96, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 32, ...extra });

export type Arch = 'llama' | 'qwen2' | 'qwen3';

const ARCH: Record<Arch, { architectures: string[]; model_type: string }> = {
  llama: { architectures: ['LlamaForCausalLM'], model_type: 'llama' },
  qwen2: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' },
  qwen3: { architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3' },
};

export function configJson(cfg: ModelConfig, arch: Arch, extra: object = {}): Record<string, unknown> {
  return {
    ...ARCH[arch],
    vocab_size: cfg.vocabSize, hidden_size: cfg.hiddenSize, intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers, num_attention_heads: cfg.numHeads, num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim, rms_norm_eps: cfg.rmsNormEps, rope_theta: cfg.ropeTheta, hidden_act: 'silu',
    tie_word_embeddings: cfg.tieWordEmbeddings, max_position_embeddings: 256, bos_token_id: 1, eos_token_id: 2,
    ...extra,
  };
}

/**
 * Makes each owner's K and V projections (and biases) low-rank: per KV head, W = C·D + noise
 * and b = C·β with C [headDim, rank]; the keys' C is shared by the KV heads (one key subspace
 * per layer, as calibration's shared key basis expects), each head's values get their own C.
 */
export function lowRankKv(weights: WeightTensor[], cfg: ModelConfig, rank: number, noise: number, seed = 3): WeightTensor[] {
  const rng = new Prng(seed);
  const { numKvHeads: Hkv, headDim: d, hiddenSize: H } = cfg;
  const randn = (n: number) => Float64Array.from({ length: n }, () => rng.normal());
  const ranges = new Map<string, Float64Array[]>(); // 'layer/k' → C per KV head
  const rangeOf = (layer: string, kind: string) => {
    const key = `${layer}/${kind}`;
    if (!ranges.has(key)) {
      const shared = randn(d * rank);
      ranges.set(key, Array.from({ length: Hkv }, () => (kind === 'k' ? shared : randn(d * rank))));
    }
    return ranges.get(key)!;
  };
  return weights.map((t) => {
    const m = /^layers\.(\d+)\.(k|v)_(proj|bias)$/.exec(t.name);
    if (!m) return t;
    const cols = m[3] === 'proj' ? H : 1;
    const C = rangeOf(m[1], m[2]);
    const data = new Float32Array(t.data.length);
    for (let g = 0; g < Hkv; g++) {
      const D = randn(rank * cols);
      for (let i = 0; i < d; i++) {
        for (let c = 0; c < cols; c++) {
          let s = 0;
          for (let j = 0; j < rank; j++) s += C[g][i * rank + j] * D[j * cols + c];
          data[(g * d + i) * cols + c] = m[3] === 'proj' ? s / Math.sqrt(rank * H) + noise * rng.normal() : (0.1 * s) / Math.sqrt(rank);
        }
      }
    }
    if (t.dtype === 'bf16') roundToBf16(data, data);
    const bytes = t.dtype === 'bf16' ? new Uint8Array(f32ToBf16(data).buffer) : new Uint8Array(data.buffer);
    return { ...t, data, bytes };
  });
}

/** An HF model directory of these canonical weights, with the tiny tokenizer. */
export function writeTestModel(dir: string, cfg: ModelConfig, weights: readonly WeightTensor[], opts: { arch?: Arch; config?: object } = {}): string {
  const tensors: StTensor[] = weights.map((t) => ({ name: hfName(t.name, false), dtype: t.dtype === 'bf16' ? 'BF16' : 'F32', shape: [...t.shape], bytes: t.bytes }));
  writeModelDir(dir, { config: configJson(cfg, opts.arch ?? 'llama', opts.config), tensors, generation: { bos_token_id: 1, eos_token_id: 2 } });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER_DIR, f), join(dir, f));
  return dir;
}

export function testWeights(cfg: ModelConfig, plan: LayerPlan, opts: { seed?: number; dtype?: 'f32' | 'bf16' } = {}): WeightTensor[] {
  return randomWeights(cfg, plan, { seed: opts.seed ?? 5, dtype: opts.dtype ?? 'f32' });
}

const WORDS = (
  'the of and a to in is was he for it with as his on be at by had are but from or have an they which one you were her all she ' +
  'there would their we him been has when who will more no if out so said what up its about into than them can only other new ' +
  'some could time these two may then do first any my now such like our over man me even most made after also did many before ' +
  'must through years where much your way well down should because each just those people how too little state good very make'
).split(' ');

/** Deterministic English-like text: sentences of common words, a paragraph break now and then. */
export function testText(chars: number, seed = 11): string {
  const rng = new Prng(seed);
  let out = '';
  while (out.length < chars) {
    const n = 5 + Math.floor(rng.uniform() * 12);
    const words = Array.from({ length: n }, () => WORDS[Math.floor(rng.uniform() * WORDS.length)]);
    words[0] = words[0][0].toUpperCase() + words[0].slice(1);
    out += `${words.join(' ')}.${rng.uniform() < 0.15 ? '\n\n' : rng.uniform() < 0.3 ? '\n' : ' '}`;
  }
  return out;
}

export function writeText(path: string, chars: number, seed = 11): string {
  writeFileSync(path, testText(chars, seed));
  return path;
}
