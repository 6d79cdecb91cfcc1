/**
 * Pieces shared by the architecture mappers: the core dimensions with each HF config class's
 * defaults, activations, layer types, and the embedding scale in the model's dtype.
 */
import type { Activation, ModelConfig } from '../model/config.js';
import type { AttentionKind } from '../plan/types.js';
import { f32ToBf16Bits, bf16BitsToF32 } from '../model/bf16.js';
import type { ConfigFields } from './config-fields.js';
import { f32ToF16Value } from './convert.js';

/** Defaults of an HF config class for the fields a config.json may leave out. */
export interface CoreDefaults {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** undefined: as many as the query heads. */
  readonly numKvHeads?: number;
  /** undefined: hidden_size / num_attention_heads. */
  readonly headDim?: number;
  readonly maxPositions: number;
  readonly tieWordEmbeddings: boolean;
}

export interface CoreDims {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly tieWordEmbeddings: boolean;
}

export function coreDims(c: ConfigFields, d: CoreDefaults): CoreDims {
  const hiddenSize = c.int('hidden_size', d.hiddenSize);
  const numHeads = c.int('num_attention_heads', d.numHeads);
  // Absent: the class default; an explicit null: as many as the query heads (HF __post_init__).
  const numKvHeads = c.raw('num_key_value_heads') === null ? numHeads : c.int('num_key_value_heads', d.numKvHeads ?? numHeads);
  if (numHeads % numKvHeads !== 0) {
    c.fail('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads=${numHeads}`);
  }
  let headDim = d.headDim;
  if (c.has('head_dim') || headDim === undefined) {
    if (!c.has('head_dim') && hiddenSize % numHeads !== 0) {
      c.fail('head_dim', `is missing and hidden_size=${hiddenSize} is not a multiple of num_attention_heads=${numHeads}`);
    }
    headDim = c.int('head_dim', hiddenSize / numHeads);
  }
  return {
    vocabSize: c.int('vocab_size', d.vocabSize),
    hiddenSize,
    intermediateSize: c.int('intermediate_size', d.intermediateSize),
    numLayers: c.int('num_hidden_layers', d.numLayers),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: c.num('rms_norm_eps', 1e-6),
    tieWordEmbeddings: c.bool('tie_word_embeddings', d.tieWordEmbeddings),
  };
}

/** HF activation names (transformers' ACT2CLS) that our gated MLP computes exactly. */
const ACTIVATIONS: Readonly<Record<string, Activation>> = {
  silu: 'silu',
  swish: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_python_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
};

export function activation(c: ConfigFields, field: string, dflt: string): Activation {
  const name = c.str(field, dflt);
  return ACTIVATIONS[name] ?? c.fail(field, `'${name}' is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
}

export type LayerType = 'full_attention' | 'sliding_attention';

/** `layer_types` checked (one entry per layer, each full or sliding), or undefined when absent. */
export function layerTypes(c: ConfigFields, numLayers: number): LayerType[] | undefined {
  const a = c.array('layer_types', numLayers, 'num_hidden_layers');
  if (!a) return undefined;
  return a.map((t, i) => {
    if (t !== 'full_attention' && t !== 'sliding_attention') {
      c.fail('layer_types', `entry ${i} is ${JSON.stringify(t)}; supported: "full_attention", "sliding_attention"`);
    }
    return t;
  });
}

/** Attention kinds from layer types; a sliding layer needs a window. */
export function attentionOf(c: ConfigFields, types: readonly LayerType[], window: number | null, why: string): AttentionKind[] {
  return types.map((t, i) => {
    if (t === 'full_attention') return { kind: 'global' };
    if (window === null) c.fail('sliding_window', `is missing or null but layer ${i} is a sliding layer${why}`);
    return { kind: 'sliding', window };
  });
}

/** A field the engine cannot honour, set to something other than its neutral value. */
export function rejectIfTrue(c: ConfigFields, field: string, why: string): void {
  if (c.bool(field, false)) c.fail(field, `is true, which is not supported (${why})`);
}

/**
 * Gemma's embedding multiplier: sqrt(hidden_size) as a float32 tensor cast to the weights'
 * dtype (Gemma2/3TextScaledWordEmbedding), so a bf16 model multiplies by the bf16 value.
 * The dtype is the config's `dtype` (transformers 5) or `torch_dtype` (published).
 */
export function gemmaEmbeddingScale(c: ConfigFields, hiddenSize: number): number {
  const dtype = c.has('dtype') ? c.str('dtype') : c.str('torch_dtype', 'float32');
  const s = Math.fround(Math.sqrt(hiddenSize));
  if (dtype === 'bfloat16') return bf16BitsToF32(f32ToBf16Bits(s));
  if (dtype === 'float16') return f32ToF16Value(s);
  return s;
}

/** One HF model family: its names, config defaults and mapping to our ModelConfig. */
export interface Family {
  readonly architectures: readonly string[];
  readonly modelTypes: readonly string[];
  /** Gemma naming: sandwich norms (pre/post_feedforward_layernorm) and norms stored as w − 1. */
  readonly gemmaNorms: boolean;
  readonly defaults: CoreDefaults;
  /** Per-layer attention under the family's own rules (when the config has no kv_sources). */
  attention(c: ConfigFields, core: CoreDims): AttentionKind[];
  /** The model config; `attention` is the checkpoint's per-layer attention (Gemma 3 ties local RoPE to it). */
  config(c: ConfigFields, core: CoreDims, attention: readonly AttentionKind[]): ModelConfig;
}
