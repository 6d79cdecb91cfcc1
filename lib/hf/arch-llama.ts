/**
 * Llama-style families: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
 * Qwen3ForCausalLM. Defaults and rules follow transformers 5's configuration_*.py and
 * modeling_*.py for each (noted where they differ).
 */
import type { ModelConfig } from '../model/config.js';
import type { AttentionKind } from '../plan/types.js';
import type { ConfigFields } from './config-fields.js';
import { activation, attentionOf, layerTypes, rejectIfTrue, type CoreDims, type Family } from './arch-common.js';
import { singleRope } from './rope.js';

function llamaStyleConfig(c: ConfigFields, core: CoreDims, maxPositions: number, switches: { qkvBias: boolean; qkNorm: boolean }): ModelConfig {
  const rope = singleRope(c, maxPositions);
  return {
    ...core,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    localRopeLayers: [],
    ropeThetaLocal: 10_000,
    activation: activation(c, 'hidden_act', 'silu'),
    ...switches,
    sandwichNorm: false,
    embeddingScale: 1,
    attnScale: core.headDim ** -0.5,
    attnSoftcap: 0,
    finalSoftcap: 0,
  };
}

const allGlobal = (core: CoreDims): AttentionKind[] => Array.from({ length: core.numLayers }, () => ({ kind: 'global' }));

export const llama: Family = {
  architectures: ['LlamaForCausalLM'],
  modelTypes: ['llama'],
  gemmaNorms: false,
  defaults: { vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numLayers: 32, numHeads: 32, maxPositions: 2048, tieWordEmbeddings: false },
  // LlamaConfig has no sliding window: layer_types/sliding_window count only with kv_sources.
  attention: (_c, core) => allGlobal(core),
  config(c, core) {
    rejectIfTrue(c, 'attention_bias', 'Llama puts it on o_proj too; only q/k/v biases are');
    rejectIfTrue(c, 'mlp_bias', 'MLP biases are not');
    return llamaStyleConfig(c, core, this.defaults.maxPositions, { qkvBias: false, qkNorm: false });
  },
};

export const mistral: Family = {
  architectures: ['MistralForCausalLM'],
  modelTypes: ['mistral'],
  gemmaNorms: false,
  defaults: { vocabSize: 32000, hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, maxPositions: 131072, tieWordEmbeddings: false },
  // Every layer slides when sliding_window is set (MistralConfig's default is 4096; null turns it off).
  attention(c, core) {
    const window = c.intOrNull('sliding_window', 4096);
    return Array.from({ length: core.numLayers }, () => (window === null ? { kind: 'global' } : { kind: 'sliding', window }));
  },
  config(c, core) {
    return llamaStyleConfig(c, core, this.defaults.maxPositions, { qkvBias: false, qkNorm: false });
  },
};

/**
 * Qwen2/3: `sliding_window` counts only with `use_sliding_window`; `layer_types` when given,
 * else layers i >= max_window_layers slide (Qwen2Config.__post_init__).
 */
function qwenAttention(c: ConfigFields, core: CoreDims): AttentionKind[] {
  const use = c.bool('use_sliding_window', false);
  const window = use ? c.intOrNull('sliding_window', 4096) : null;
  const maxWindowLayers = c.int('max_window_layers', 28, 0);
  const types = layerTypes(c, core.numLayers) ??
    Array.from({ length: core.numLayers }, (_, i) => (window !== null && i >= maxWindowLayers ? 'sliding_attention' : 'full_attention'));
  return attentionOf(c, types, window, use ? '' : ' (use_sliding_window is false)');
}

const qwenDefaults = { vocabSize: 151936, hiddenSize: 4096, intermediateSize: 22016, numLayers: 32, numHeads: 32, maxPositions: 32768, tieWordEmbeddings: false };

export const qwen2: Family = {
  architectures: ['Qwen2ForCausalLM'],
  modelTypes: ['qwen2'],
  gemmaNorms: false,
  defaults: qwenDefaults,
  attention: qwenAttention,
  // Qwen2 always has q/k/v biases and no o_proj bias (modeling_qwen2.py).
  config(c, core) {
    return llamaStyleConfig(c, core, this.defaults.maxPositions, { qkvBias: true, qkNorm: false });
  },
};

export const qwen3: Family = {
  architectures: ['Qwen3ForCausalLM'],
  modelTypes: ['qwen3'],
  gemmaNorms: false,
  defaults: { ...qwenDefaults, headDim: 128 },
  attention: qwenAttention,
  config(c, core) {
    rejectIfTrue(c, 'attention_bias', 'Qwen3 puts it on o_proj too; only q/k/v biases are');
    return llamaStyleConfig(c, core, this.defaults.maxPositions, { qkvBias: false, qkNorm: true });
  },
};
