/**
 * HF tensor names ↔ our canonical weight names (lib/model/weights.ts), and the config fields
 * that set each tensor's shape (for errors that say which field contradicts the weights).
 */
import type { ModelConfig } from '../model/config.js';
import type { LayerPlan } from '../plan/types.js';

const LAYER = /^layers\.(\d+)\.(.+)$/;
const HF_LAYER = /^model\.layers\.(\d+)\.(.+)$/;

/** Per-layer canonical suffix → HF suffix (under model.layers.i.). */
function layerSuffix(what: string, gemma: boolean): string {
  switch (what) {
    case 'attn_norm':
      return 'input_layernorm.weight';
    // Gemma has four norms per layer: post_attention_layernorm is the sandwich norm there.
    case 'mlp_norm':
      return gemma ? 'pre_feedforward_layernorm.weight' : 'post_attention_layernorm.weight';
    case 'post_attn_norm':
      return 'post_attention_layernorm.weight';
    case 'post_mlp_norm':
      return 'post_feedforward_layernorm.weight';
    case 'q_proj':
    case 'k_proj':
    case 'v_proj':
    case 'o_proj':
      return `self_attn.${what}.weight`;
    case 'q_bias':
    case 'k_bias':
    case 'v_bias':
      return `self_attn.${what[0]}_proj.bias`;
    case 'q_norm':
    case 'k_norm':
    case 'k_up': // low-rank keys' basis (Eigen Attention)
      return `self_attn.${what}.weight`;
    case 'gate_proj':
    case 'up_proj':
    case 'down_proj':
      return `mlp.${what}.weight`;
    default:
      throw new Error(`no HF name for canonical weight '${what}'`);
  }
}

/** The HF tensor name of a canonical weight; `gemma` selects Gemma's norm names. */
export function hfTensorName(canonical: string, gemma: boolean): string {
  if (canonical === 'embed') return 'model.embed_tokens.weight';
  if (canonical === 'final_norm') return 'model.norm.weight';
  if (canonical === 'lm_head') return 'lm_head.weight';
  const m = LAYER.exec(canonical);
  if (!m) throw new Error(`no HF name for canonical weight '${canonical}'`);
  return `model.layers.${m[1]}.${layerSuffix(m[2], gemma)}`;
}

/** Gemma stores every RMSNorm weight as w − 1. */
export const isNorm = (canonical: string): boolean => canonical.endsWith('_norm');

/** The layer index of an HF per-layer tensor name, or undefined. */
export function hfLayerOf(hfName: string): number | undefined {
  const m = HF_LAYER.exec(hfName);
  return m ? Number(m[1]) : undefined;
}

/** Canonical K/V weights: what a reader layer does not have. */
export const isKvWeight = (canonical: string): boolean => /\.(k_proj|v_proj|k_bias|v_bias|k_norm|k_up)$/.test(canonical);

/** Tensors some checkpoints carry that hold no weights (old Llama exports' RoPE buffers). */
export const isIgnorableTensor = (hfName: string): boolean => hfName.endsWith('.rotary_emb.inv_freq');

/**
 * The config.json fields behind each dimension of a canonical weight's shape, with values,
 * e.g. "[num_attention_heads×head_dim = 4×16, hidden_size = 48]". With `plan`, the K/V
 * widths of low-rank layers name their eigen_attention ranks.
 */
export function shapeFields(canonical: string, cfg: ModelConfig, plan?: LayerPlan): string {
  const H = `hidden_size = ${cfg.hiddenSize}`;
  const q = `num_attention_heads×head_dim = ${cfg.numHeads}×${cfg.headDim}`;
  const m = LAYER.exec(canonical);
  const what = m?.[2] ?? canonical;
  const layer = m ? Number(m[1]) : -1;
  const src = plan?.layers[layer]?.kvSource ?? layer;
  const rank = plan?.layers[src]?.kvRank;
  const width = (heads: string, n: number, r: number | undefined, field: string): string =>
    r === undefined ? `${heads}×head_dim = ${n}×${cfg.headDim}` : `${heads}×eigen_attention.${field}[${layer}] = ${n}×${r}`;
  const k = width('num_key_value_heads', cfg.numKvHeads, rank?.k, 'k_ranks');
  const v = width('num_key_value_heads', cfg.numKvHeads, rank?.v, 'v_ranks');
  const o = width('num_attention_heads', cfg.numHeads, rank?.v, 'v_ranks');
  const I = `intermediate_size = ${cfg.intermediateSize}`;
  const dims: Record<string, string[]> = {
    embed: [`vocab_size = ${cfg.vocabSize}`, H],
    lm_head: [`vocab_size = ${cfg.vocabSize}`, H],
    q_proj: [q, H],
    k_proj: [k, H],
    v_proj: [v, H],
    o_proj: [H, o],
    k_up: [`head_dim = ${cfg.headDim}`, `eigen_attention.k_ranks[${layer}] = ${rank?.k ?? cfg.headDim}`],
    q_bias: [q],
    k_bias: [k],
    v_bias: [v],
    q_norm: [`head_dim = ${cfg.headDim}`],
    k_norm: [`head_dim = ${cfg.headDim}`],
    gate_proj: [I, H],
    up_proj: [I, H],
    down_proj: [H, I],
  };
  return `[${(dims[what] ?? [H]).join(', ')}]`;
}
