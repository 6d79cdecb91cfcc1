/**
 * One test model per supported architecture (and the MixAttention extension): the config.json
 * in both formats (as published checkpoints write it, and as transformers 5 writes it), and
 * the ModelConfig and plan the loader must map it to, written out by hand.
 */
import type { ModelConfig } from '../../lib/model/config.js';
import { llamaConfig } from '../../lib/model/config.js';
import type { LayerPlan, LayerSpec } from '../../lib/plan/types.js';

export interface HfCase {
  readonly name: string;
  readonly architecture: string;
  readonly gemma: boolean;
  readonly published: object;
  readonly v5: object;
  readonly cfg: ModelConfig;
  readonly plan: LayerPlan;
}

const G = (src: number): LayerSpec => ({ attention: { kind: 'global' }, kvSource: src });
const S = (w: number, src: number): LayerSpec => ({ attention: { kind: 'sliding', window: w }, kvSource: src });
const plan = (...layers: LayerSpec[]): LayerPlan => ({ name: 'checkpoint', layers });
const owners = (kinds: ('g' | number)[]): LayerPlan => plan(...kinds.map((k, i) => (k === 'g' ? G(i) : S(k, i))));

/** Small dims shared by the cases: vocab 41, hidden 24, 4 heads (2 KV) of 8. */
function base(numLayers: number, extra: Partial<ModelConfig> = {}): ModelConfig {
  const headDim = extra.headDim ?? 8;
  return llamaConfig({
    vocabSize: 41, hiddenSize: 24, intermediateSize: 40, numLayers, numHeads: 4, numKvHeads: 2, headDim,
    rmsNormEps: 1e-5, attnScale: headDim ** -0.5, ...extra,
  });
}

function dims(c: ModelConfig): object {
  return {
    vocab_size: c.vocabSize, hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers, num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim, rms_norm_eps: c.rmsNormEps, tie_word_embeddings: c.tieWordEmbeddings,
    max_position_embeddings: 128, bos_token_id: 1, eos_token_id: 2,
  };
}

const ids = (arch: string, modelType: string) => ({ architectures: [arch], model_type: modelType });

const llamaCfg = base(4, { ropeTheta: 500000 });
const llama3Cfg = base(4, {
  ropeTheta: 500000,
  ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
});
const linearCfg = base(3, { ropeTheta: 10000, ropeScaling: { type: 'linear', factor: 2 } });
const mistralCfg = base(4, { ropeTheta: 1e6 });
const qwen2Cfg = base(4, { ropeTheta: 1e6, qkvBias: true, tieWordEmbeddings: true });
const qwen3Cfg = base(3, { ropeTheta: 1e6, qkNorm: true, headDim: 12 });
const gemma2Cfg = base(4, {
  activation: 'gelu_tanh', tieWordEmbeddings: true, sandwichNorm: true, rmsNormEps: 1e-6,
  embeddingScale: Math.fround(Math.sqrt(24)), attnScale: 16 ** -0.5, attnSoftcap: 5, finalSoftcap: 3,
});
const gemma3Cfg = base(4, {
  activation: 'gelu_tanh', tieWordEmbeddings: true, sandwichNorm: true, qkNorm: true, rmsNormEps: 1e-6,
  embeddingScale: Math.fround(Math.sqrt(24)), attnScale: 8 ** -0.5,
  ropeTheta: 1e6, ropeScaling: { type: 'linear', factor: 2 }, ropeThetaLocal: 1e4, localRopeLayers: [0, 1, 3],
});
const extCfg = base(6, { ropeTheta: 10000 });
const gemma3ExtCfg = { ...gemma3Cfg, numLayers: 6, localRopeLayers: [1, 2, 3, 4] };

const extTypes = ['full_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'sliding_attention', 'full_attention'];

export const CASES: readonly HfCase[] = [
  {
    name: 'llama', architecture: 'LlamaForCausalLM', gemma: false, cfg: llamaCfg, plan: owners(['g', 'g', 'g', 'g']),
    published: { ...ids('LlamaForCausalLM', 'llama'), ...dims(llamaCfg), hidden_act: 'silu', rope_theta: 500000, rope_scaling: null, torch_dtype: 'float32' },
    v5: { ...ids('LlamaForCausalLM', 'llama'), ...dims(llamaCfg), hidden_act: 'silu', rope_parameters: { rope_type: 'default', rope_theta: 500000 }, dtype: 'float32' },
  },
  {
    name: 'llama3 rope', architecture: 'LlamaForCausalLM', gemma: false, cfg: llama3Cfg, plan: owners(['g', 'g', 'g', 'g']),
    published: {
      ...ids('LlamaForCausalLM', 'llama'), ...dims(llama3Cfg), rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    },
    v5: {
      ...ids('LlamaForCausalLM', 'llama'), ...dims(llama3Cfg),
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    },
  },
  {
    name: 'linear rope', architecture: 'LlamaForCausalLM', gemma: false, cfg: linearCfg, plan: owners(['g', 'g', 'g']),
    published: { ...ids('LlamaForCausalLM', 'llama'), ...dims(linearCfg), rope_scaling: { type: 'linear', factor: 2 } },
    v5: { ...ids('LlamaForCausalLM', 'llama'), ...dims(linearCfg), rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 10000 } },
  },
  {
    name: 'mistral', architecture: 'MistralForCausalLM', gemma: false, cfg: mistralCfg, plan: owners([4, 4, 4, 4]),
    published: { ...ids('MistralForCausalLM', 'mistral'), ...dims(mistralCfg), rope_theta: 1e6, sliding_window: 4 },
    v5: { ...ids('MistralForCausalLM', 'mistral'), ...dims(mistralCfg), rope_parameters: { rope_type: 'default', rope_theta: 1e6 }, sliding_window: 4 },
  },
  {
    name: 'qwen2', architecture: 'Qwen2ForCausalLM', gemma: false, cfg: qwen2Cfg, plan: owners(['g', 'g', 4, 4]),
    published: { ...ids('Qwen2ForCausalLM', 'qwen2'), ...dims(qwen2Cfg), rope_theta: 1e6, use_sliding_window: true, sliding_window: 4, max_window_layers: 2 },
    v5: {
      ...ids('Qwen2ForCausalLM', 'qwen2'), ...dims(qwen2Cfg), rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
      use_sliding_window: true, sliding_window: 4, max_window_layers: 2,
      layer_types: ['full_attention', 'full_attention', 'sliding_attention', 'sliding_attention'],
    },
  },
  {
    name: 'qwen3', architecture: 'Qwen3ForCausalLM', gemma: false, cfg: qwen3Cfg, plan: owners(['g', 'g', 'g']),
    published: { ...ids('Qwen3ForCausalLM', 'qwen3'), ...dims(qwen3Cfg), rope_theta: 1e6, use_sliding_window: false, sliding_window: null, max_window_layers: 3, attention_bias: false },
    v5: {
      ...ids('Qwen3ForCausalLM', 'qwen3'), ...dims(qwen3Cfg), rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
      use_sliding_window: false, sliding_window: null, layer_types: ['full_attention', 'full_attention', 'full_attention'],
    },
  },
  {
    name: 'gemma2', architecture: 'Gemma2ForCausalLM', gemma: true, cfg: gemma2Cfg, plan: owners([4, 'g', 4, 'g']),
    published: {
      ...ids('Gemma2ForCausalLM', 'gemma2'), ...dims(gemma2Cfg), hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh',
      rope_theta: 10000, query_pre_attn_scalar: 16, sliding_window: 4, attn_logit_softcapping: 5, final_logit_softcapping: 3,
      cache_implementation: 'hybrid', torch_dtype: 'float32',
    },
    v5: {
      ...ids('Gemma2ForCausalLM', 'gemma2'), ...dims(gemma2Cfg), hidden_activation: 'gelu_pytorch_tanh',
      rope_parameters: { rope_type: 'default', rope_theta: 10000 }, query_pre_attn_scalar: 16, sliding_window: 4,
      layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
      attn_logit_softcapping: 5, final_logit_softcapping: 3, dtype: 'float32',
    },
  },
  {
    name: 'gemma3', architecture: 'Gemma3ForCausalLM', gemma: true, cfg: gemma3Cfg, plan: owners([4, 4, 'g', 4]),
    published: {
      ...ids('Gemma3ForCausalLM', 'gemma3_text'), ...dims(gemma3Cfg), hidden_activation: 'gelu_pytorch_tanh',
      rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { rope_type: 'linear', factor: 2 }, sliding_window: 4,
      sliding_window_pattern: 3, query_pre_attn_scalar: 8, attn_logit_softcapping: null, final_logit_softcapping: null,
    },
    v5: {
      ...ids('Gemma3ForCausalLM', 'gemma3_text'), ...dims(gemma3Cfg), hidden_activation: 'gelu_pytorch_tanh',
      rope_parameters: { full_attention: { rope_type: 'linear', factor: 2, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } },
      layer_types: ['sliding_attention', 'sliding_attention', 'full_attention', 'sliding_attention'],
      sliding_window: 4, query_pre_attn_scalar: 8,
    },
  },
  {
    name: 'mixattn extension (llama)', architecture: 'LlamaForCausalLM', gemma: false, cfg: extCfg,
    plan: plan(G(0), S(4, 1), S(4, 1), S(4, 3), S(4, 3), G(0)),
    published: { ...ids('LlamaForCausalLM', 'llama'), ...dims(extCfg), rope_theta: 10000, layer_types: extTypes, sliding_window: 4, kv_sources: [0, 1, 1, 3, 3, 0] },
    v5: {
      ...ids('LlamaForCausalLM', 'llama'), ...dims(extCfg), rope_parameters: { rope_type: 'default', rope_theta: 10000 },
      layer_types: extTypes, sliding_window: 4, kv_sources: [0, 1, 1, 3, 3, 0],
    },
  },
  {
    name: 'mixattn extension (gemma3)', architecture: 'Gemma3ForCausalLM', gemma: true, cfg: gemma3ExtCfg,
    plan: plan(G(0), S(4, 1), S(4, 1), S(4, 3), S(4, 3), G(0)),
    published: {
      ...ids('Gemma3ForCausalLM', 'gemma3_text'), ...dims(gemma3ExtCfg), rope_theta: 1e6, rope_local_base_freq: 1e4,
      rope_scaling: { rope_type: 'linear', factor: 2 }, sliding_window: 4, query_pre_attn_scalar: 8,
      layer_types: extTypes, kv_sources: [0, 1, 1, 3, 3, 0],
    },
    v5: {
      ...ids('Gemma3ForCausalLM', 'gemma3_text'), ...dims(gemma3ExtCfg), sliding_window: 4, query_pre_attn_scalar: 8,
      rope_parameters: { full_attention: { rope_type: 'linear', factor: 2, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } },
      layer_types: extTypes, kv_sources: [0, 1, 1, 3, 3, 0],
    },
  },
];
