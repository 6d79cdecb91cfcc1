/**
 * A low-rank K/V checkpoint (config.json eigen_attention) written from random weights, for
 * the HF, serving and CLI tests: Llama with the MixAttention extension, 6 layers, head_dim 16,
 * keys at rank, values at rank, and one owner's full-width keys stored in a basis.
 */
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { Prng } from '../../lib/model/prng.js';
import { f32ToBf16, bf16ToF32 } from '../../lib/model/bf16.js';
import type { LayerPlan, LayerSpec } from '../../lib/plan/types.js';
import { checkpointTensors, writeModelDir, type Storage } from './helpers.js';
import type { StTensor } from './safetensors-writer.js';

export const cfg: ModelConfig = llamaConfig({
  vocabSize: 41, hiddenSize: 24, intermediateSize: 40, numLayers: 6, numHeads: 4, numKvHeads: 2, headDim: 16, rmsNormEps: 1e-5,
});
export const G = (src: number): LayerSpec => ({ attention: { kind: 'global' }, kvSource: src });
export const S = (w: number, src: number): LayerSpec => ({ attention: { kind: 'sliding', window: w }, kvSource: src });
export const SOURCES = [0, 1, 1, 3, 3, 0];
export const K_RANKS = [5, 16, 16, 9, 9, 5]; // keys at rank, at full width (stored in a basis), at rank
export const V_RANKS = [16, 3, 3, 11, 11, 16]; // values full, at rank, at rank
const rankOf = (i: number) => (K_RANKS[i] < 16 || V_RANKS[i] < 16 ? { kvRank: { k: K_RANKS[i], v: V_RANKS[i] } } : {});
export const layers: LayerSpec[] = [G(0), S(4, 1), S(4, 1), S(4, 3), S(4, 3), G(0)];
export const plan: LayerPlan = { name: 'checkpoint', layers: layers.map((l, i) => ({ ...l, ...rankOf(i) })) };

export const config = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  architectures: ['LlamaForCausalLM'], model_type: 'llama',
  vocab_size: 41, hidden_size: 24, intermediate_size: 40, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 16, rms_norm_eps: 1e-5, tie_word_embeddings: false, max_position_embeddings: 128, bos_token_id: 1, eos_token_id: 2,
  rope_theta: 10000,
  layer_types: ['full_attention', ...Array(4).fill('sliding_attention'), 'full_attention'],
  sliding_window: 4,
  kv_sources: SOURCES,
  eigen_attention: { k_ranks: K_RANKS, v_ranks: V_RANKS, error_budget: 0.025 },
  ...extra,
});

const bytesOf = (a: Float32Array | Uint16Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The checkpoint's tensors and the weights the reference computes with: the random canonical
 * low-rank weights, plus layer 1's full-width keys stored in a random orthonormal basis
 * (k_up [16, 16], which the loader folds into k_proj).
 */
export function lowRankCheckpoint(storage: Storage): { hf: StTensor[]; ref: Map<string, Float32Array | Float64Array> } {
  const { hf } = checkpointTensors(cfg, plan, { storage, gemma: false, seed: 3 });
  const ref = new Map<string, Float32Array | Float64Array>();
  for (const t of hf) {
    const name = t.name.replace('model.embed_tokens.weight', 'embed').replace('model.norm.weight', 'final_norm').replace('lm_head.weight', 'lm_head');
    ref.set(canonicalOf(name), storage === 'BF16' ? bf16ToF32(new Uint16Array(t.bytes.slice().buffer)) : new Float32Array(t.bytes.slice().buffer));
  }
  const rng = new Prng(99);
  const m = Float64Array.from({ length: 256 }, () => rng.normal());
  for (let j = 0; j < 16; j++) {
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let i = 0; i < 16; i++) dot += m[i * 16 + j] * m[i * 16 + p];
      for (let i = 0; i < 16; i++) m[i * 16 + j] -= dot * m[i * 16 + p];
    }
    let s = 0;
    for (let i = 0; i < 16; i++) s += m[i * 16 + j] ** 2;
    for (let i = 0; i < 16; i++) m[i * 16 + j] /= Math.sqrt(s);
  }
  const u = Float32Array.from(m);
  const stored = storage === 'BF16' ? f32ToBf16(u) : u;
  hf.push({ name: 'model.layers.1.self_attn.k_up.weight', dtype: storage === 'BF16' ? 'BF16' : 'F32', shape: [16, 16], bytes: bytesOf(stored) });
  ref.set('layers.1.k_up', storage === 'BF16' ? bf16ToF32(stored as Uint16Array) : u);
  return { hf, ref };
}

const NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm', 'post_attention_layernorm.weight': 'mlp_norm', 'self_attn.q_proj.weight': 'q_proj',
  'self_attn.k_proj.weight': 'k_proj', 'self_attn.v_proj.weight': 'v_proj', 'self_attn.o_proj.weight': 'o_proj',
  'self_attn.k_up.weight': 'k_up', 'mlp.gate_proj.weight': 'gate_proj', 'mlp.up_proj.weight': 'up_proj', 'mlp.down_proj.weight': 'down_proj',
};
function canonicalOf(hf: string): string {
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  return m ? `layers.${m[1]}.${NAMES[m[2]]}` : hf;
}

/** Writes the checkpoint into `dir`; returns the weights the float64 reference computes with. */
export function writeLowRankDir(dir: string, opts: { storage?: Storage; shards?: number; tokenizer?: boolean } = {}): Map<string, Float32Array | Float64Array> {
  const { hf, ref } = lowRankCheckpoint(opts.storage ?? 'F32');
  writeModelDir(dir, { config: config(), tensors: hf, shards: opts.shards, tokenizer: opts.tokenizer });
  return ref;
}
