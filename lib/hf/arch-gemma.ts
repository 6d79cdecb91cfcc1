/**
 * Gemma2ForCausalLM and Gemma3ForCausalLM (Gemma3TextConfig), after transformers 5's
 * configuration_gemma{2,3}.py and modeling_gemma{2,3}.py: GeGLU, sandwich norms, RMSNorm
 * weights applied as (1 + w), embeddings scaled by sqrt(hidden_size), attention scale
 * query_pre_attn_scalar^-0.5, soft-caps; Gemma 3 adds q/k norms and a local RoPE base for
 * its sliding layers.
 */
import type { ModelConfig } from '../model/config.js';
import type { AttentionKind } from '../plan/types.js';
import type { ConfigFields } from './config-fields.js';
import { activation, attentionOf, gemmaEmbeddingScale, layerTypes, rejectIfTrue, type CoreDims, type LayerType } from './arch-common.js';
import type { Family } from './arch-common.js';
import { gemma3Ropes, singleRope, type Rope } from './rope.js';

function gemmaConfig(c: ConfigFields, core: CoreDims, gemma3: boolean, global: Rope, local: Rope, localLayers: number[]): ModelConfig {
  rejectIfTrue(c, 'attention_bias', 'Gemma puts it on o_proj too; only q/k/v biases are');
  rejectIfTrue(c, 'use_bidirectional_attention', 'the engine is causal');
  return {
    ...core,
    ropeTheta: global.theta,
    ropeScaling: global.scaling,
    localRopeLayers: localLayers,
    ropeThetaLocal: local.theta,
    activation: activation(c, 'hidden_activation', 'gelu_pytorch_tanh'),
    qkvBias: false,
    qkNorm: gemma3,
    sandwichNorm: true,
    embeddingScale: gemmaEmbeddingScale(c, core.hiddenSize),
    attnScale: c.num('query_pre_attn_scalar', 256) ** -0.5,
    // Gemma 2 soft-caps by default (50 / 30); Gemma 3 does not. null turns either off.
    attnSoftcap: c.numOrOff('attn_logit_softcapping', gemma3 ? null : 50),
    finalSoftcap: c.numOrOff('final_logit_softcapping', gemma3 ? null : 30),
  };
}

const window = (c: ConfigFields): number | null => c.intOrNull('sliding_window', 4096);

export const gemma2: Family = {
  architectures: ['Gemma2ForCausalLM'],
  modelTypes: ['gemma2'],
  gemmaNorms: true,
  defaults: { vocabSize: 256000, hiddenSize: 2304, intermediateSize: 9216, numLayers: 26, numHeads: 8, numKvHeads: 4, headDim: 256, maxPositions: 8192, tieWordEmbeddings: true },
  // Without layer_types, even layers slide: "sliding_attention" if (i + 1) % 2 (Gemma2Config).
  attention(c, core) {
    const types = layerTypes(c, core.numLayers) ??
      Array.from({ length: core.numLayers }, (_, i): LayerType => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention'));
    return attentionOf(c, types, window(c), '');
  },
  config(c, core) {
    const rope = singleRope(c, this.defaults.maxPositions);
    return gemmaConfig(c, core, false, rope, { theta: 10_000, scaling: { type: 'default' } }, []);
  },
};

export const gemma3: Family = {
  architectures: ['Gemma3ForCausalLM'],
  modelTypes: ['gemma3_text'],
  gemmaNorms: true,
  defaults: { vocabSize: 262208, hiddenSize: 2304, intermediateSize: 9216, numLayers: 26, numHeads: 8, numKvHeads: 4, headDim: 256, maxPositions: 131072, tieWordEmbeddings: true },
  // Without layer_types: global where (i + 1) % sliding_window_pattern == 0 (default 6).
  attention(c, core) {
    let types = layerTypes(c, core.numLayers);
    if (!types) {
      const p = c.int('sliding_window_pattern', 6);
      types = Array.from({ length: core.numLayers }, (_, i) => ((i + 1) % p ? 'sliding_attention' : 'full_attention'));
    }
    return attentionOf(c, types, window(c), '');
  },
  // The layers the checkpoint trained as sliding use the local RoPE, whatever plan runs them.
  config(c, core, attention: readonly AttentionKind[]) {
    const { global, local } = gemma3Ropes(c, this.defaults.maxPositions);
    const localLayers = attention.flatMap((a, i) => (a.kind === 'sliding' ? [i] : []));
    return gemmaConfig(c, core, true, global, local, localLayers);
  },
};
