/** config.json → ModelConfig and plan: the rules of each family, both formats, and the extension. */
import { describe, expect, it } from 'vitest';
import { mapHfConfig, SUPPORTED_ARCHITECTURES } from '../../lib/hf/architectures.js';
import { ModelLoadError } from '../../lib/hf/errors.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../../lib/model/bf16.js';
import { CASES } from './cases.js';

const FILE = '/m/config.json';
const map = (json: object) => mapHfConfig(json, FILE);
const kinds = (json: object) => map(json).plan.layers.map((l) => (l.attention.kind === 'global' ? 'g' : l.attention.window));
const caseOf = (name: string) => CASES.find((c) => c.name === name)!;

/** The one-line ModelLoadError thrown for `json`, checked to name the config file and `field`. */
function errorOf(json: object, field: string): string {
  let err: unknown;
  try {
    map(json);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelLoadError);
  const e = err as ModelLoadError;
  expect(e.message).not.toContain('\n');
  expect(e.message.startsWith(`${FILE}: `)).toBe(true);
  expect(e.field).toBe(field);
  expect(e.message).toContain(field);
  return e.message;
}

describe('both config formats map to the same model', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const a = map(c.published);
      const b = map(c.v5);
      expect(a.config).toEqual(c.cfg);
      expect(b.config).toEqual(c.cfg);
      expect(a.plan).toEqual(b.plan);
      expect(a.architecture).toBe(c.architecture);
    });
  }
});

describe('family rules (as transformers 5 applies them)', () => {
  const llama = caseOf('llama').published;
  const mistral = caseOf('mistral').published;
  const qwen2 = caseOf('qwen2').published;
  const gemma2 = caseOf('gemma2').published;
  const gemma3 = caseOf('gemma3').published;

  it('Llama ignores layer_types and sliding_window without kv_sources', () => {
    expect(kinds({ ...llama, layer_types: Array(4).fill('sliding_attention'), sliding_window: 4 })).toEqual(['g', 'g', 'g', 'g']);
  });

  it('Mistral slides everywhere with sliding_window, defaults it to 4096, and null turns it off', () => {
    expect(kinds(mistral)).toEqual([4, 4, 4, 4]);
    const { sliding_window: _, ...noWindow } = mistral as Record<string, unknown>;
    expect(kinds(noWindow)).toEqual([4096, 4096, 4096, 4096]);
    expect(kinds({ ...mistral, sliding_window: null })).toEqual(['g', 'g', 'g', 'g']);
  });

  it('Qwen2 slides layers >= max_window_layers only with use_sliding_window', () => {
    expect(kinds(qwen2)).toEqual(['g', 'g', 4, 4]);
    expect(kinds({ ...qwen2, max_window_layers: 0 })).toEqual([4, 4, 4, 4]);
    expect(kinds({ ...qwen2, use_sliding_window: false })).toEqual(['g', 'g', 'g', 'g']);
    const msg = errorOf({ ...qwen2, use_sliding_window: false, layer_types: Array(4).fill('sliding_attention') }, 'sliding_window');
    expect(msg).toMatch(/layer 0 is a sliding layer \(use_sliding_window is false\)/);
  });

  it('Qwen3 defaults head_dim to 128, not hidden/heads', () => {
    const { head_dim: _, ...rest } = caseOf('qwen3').published as Record<string, unknown>;
    expect(map(rest).config.headDim).toBe(128);
    const { head_dim: __, ...llamaRest } = llama as Record<string, unknown>;
    expect(map(llamaRest).config.headDim).toBe(6);
  });

  it('Gemma 2: even layers slide; soft-caps default to 50/30 and null turns them off', () => {
    const { layer_types: _, attn_logit_softcapping: __, final_logit_softcapping: ___, ...rest } = gemma2 as Record<string, unknown>;
    expect(kinds(rest)).toEqual([4, 'g', 4, 'g']);
    expect(map(rest).config).toMatchObject({ attnSoftcap: 50, finalSoftcap: 30 });
    expect(map({ ...gemma2, attn_logit_softcapping: null, final_logit_softcapping: null }).config).toMatchObject({ attnSoftcap: 0, finalSoftcap: 0 });
  });

  it('Gemma: the embedding scale is sqrt(hidden) in the model dtype', () => {
    const bf16 = bf16BitsToF32(f32ToBf16Bits(Math.sqrt(24)));
    expect(bf16).not.toBe(Math.fround(Math.sqrt(24)));
    expect(map({ ...gemma2, torch_dtype: 'bfloat16' }).config.embeddingScale).toBe(bf16);
    expect(map({ ...caseOf('gemma3').v5, dtype: 'bfloat16' }).config.embeddingScale).toBe(bf16);
    expect(map({ ...gemma2, torch_dtype: 'float16' }).config.embeddingScale).toBe(4.8984375); // f16 of 4.89898
  });

  it('Gemma 3: sliding_window_pattern (default 6), local RoPE on sliding layers, scaling only on global ones', () => {
    const twelve = { ...gemma3, num_hidden_layers: 12, sliding_window_pattern: undefined };
    const m = map(twelve);
    expect(kinds(twelve).map((k, i) => (k === 'g' ? i : -1)).filter((i) => i >= 0)).toEqual([5, 11]);
    expect(m.config.localRopeLayers).toEqual([0, 1, 2, 3, 4, 6, 7, 8, 9, 10]);
    expect(m.config).toMatchObject({ ropeTheta: 1e6, ropeThetaLocal: 1e4, ropeScaling: { type: 'linear', factor: 2 } });
    // Defaults when no RoPE fields are given: 1e6 global, 1e4 local, no scaling.
    const { rope_theta: _, rope_local_base_freq: __, rope_scaling: ___, ...bare } = gemma3 as Record<string, unknown>;
    expect(map(bare).config).toMatchObject({ ropeTheta: 1e6, ropeThetaLocal: 1e4, ropeScaling: { type: 'default' } });
  });

  it('Gemma 3 wants rope_parameters keyed by layer type; non-default RoPE on sliding layers is refused', () => {
    errorOf({ ...caseOf('gemma3').v5, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }, 'rope_parameters');
    errorOf({ ...caseOf('gemma3').v5, rope_parameters: { sliding_attention: { rope_type: 'linear', factor: 2 } } }, 'rope_parameters.sliding_attention.rope_type');
    errorOf({ ...gemma3, use_bidirectional_attention: true }, 'use_bidirectional_attention');
  });

  it('llama3 RoPE takes original_max_position_embeddings from max_position_embeddings when absent', () => {
    const c = caseOf('llama3 rope').v5 as { rope_parameters: Record<string, unknown> };
    const { original_max_position_embeddings: _, ...rp } = c.rope_parameters;
    expect(map({ ...c, rope_parameters: rp }).config.ropeScaling).toMatchObject({ originalMaxPositionEmbeddings: 128 });
  });

  it('rope_scaling wins over rope_parameters, as in transformers', () => {
    const m = map({ ...llama, rope_parameters: { rope_type: 'default', rope_theta: 7 }, rope_scaling: { type: 'linear', factor: 3 } });
    expect(m.config).toMatchObject({ ropeTheta: 500000, ropeScaling: { type: 'linear', factor: 3 } });
  });

  it('refuses what the engine cannot compute, naming the field', () => {
    errorOf({ ...llama, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type');
    errorOf({ ...llama, rope_parameters: { rope_type: 'dynamic', factor: 2 } }, 'rope_parameters.rope_type');
    errorOf({ ...llama, partial_rotary_factor: 0.5 }, 'partial_rotary_factor');
    errorOf({ ...llama, attention_bias: true }, 'attention_bias');
    errorOf({ ...llama, mlp_bias: true }, 'mlp_bias');
    errorOf({ ...llama, hidden_act: 'relu' }, 'hidden_act');
    errorOf({ ...gemma2, hidden_activation: 'gelu' }, 'hidden_activation');
    errorOf({ ...llama, num_key_value_heads: 3 }, 'num_key_value_heads');
    errorOf({ ...llama, hidden_size: 'big' }, 'hidden_size');
    expect(errorOf({ ...qwen2, layer_types: ['full_attention'] }, 'layer_types')).toMatch(/has 1 entries but num_hidden_layers=4/);
    expect(errorOf({ ...qwen2, layer_types: Array(4).fill('chunked_attention') }, 'layer_types')).toMatch(/entry 0 is "chunked_attention"/);
  });
});

describe('architecture and model_type', () => {
  const llama = caseOf('llama').published;
  it('unknown architectures are refused with the supported list', () => {
    const msg = errorOf({ ...llama, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }, 'architectures');
    expect(msg).toContain(`supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}`);
    errorOf({ ...llama, architectures: undefined, model_type: 'gemma3' }, 'model_type');
    errorOf({ ...llama, architectures: undefined, model_type: undefined }, 'model_type');
  });
  it('either field alone is enough; disagreeing ones are refused', () => {
    expect(map({ ...llama, architectures: undefined }).architecture).toBe('LlamaForCausalLM');
    expect(map({ ...caseOf('gemma3').v5, model_type: undefined }).architecture).toBe('Gemma3ForCausalLM');
    errorOf({ ...llama, model_type: 'qwen2' }, 'model_type');
  });
});

describe('the MixAttention extension', () => {
  const ext = caseOf('mixattn extension (llama)').published as Record<string, unknown>;
  it('kv_sources on top of layer_types and sliding_window', () => {
    expect(map(ext).plan.layers.map((l) => l.kvSource)).toEqual([0, 1, 1, 3, 3, 0]);
    expect(map(ext).mixattn).toBe(true);
    // Qwen's use_sliding_window does not apply: layer_types and sliding_window are read as written.
    const q = map({ ...caseOf('qwen3').published, ...ext, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', use_sliding_window: false });
    expect(q.plan).toEqual(map(ext).plan);
  });
  it('is validated as a plan, naming the field and the layer', () => {
    expect(errorOf({ ...ext, kv_sources: [0, 1, 1, 3, 3, 1] }, 'kv_sources')).toMatch(/layer 5: a global layer cannot read the sliding cache of layer 1/);
    expect(errorOf({ ...ext, kv_sources: [0, 1, 2, 2, 3, 0] }, 'kv_sources')).toMatch(/layer 4: kvSource 3 is itself a reader/);
    expect(errorOf({ ...ext, kv_sources: [0, 1, 1, 3, 3] }, 'kv_sources')).toMatch(/has 5 entries but num_hidden_layers=6/);
    expect(errorOf({ ...ext, kv_sources: [0, 1, 1, 3, 3, 'x'] }, 'kv_sources')).toMatch(/entry 5/);
    errorOf({ ...ext, layer_types: undefined }, 'layer_types');
    errorOf({ ...ext, sliding_window: null }, 'sliding_window');
  });
});
