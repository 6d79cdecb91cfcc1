/**
 * RoPE parameters from both config formats, read the way transformers 5 reads them
 * (modeling_rope_utils.py, RotaryEmbeddingConfigMixin):
 *   - published checkpoints: `rope_theta` plus an optional `rope_scaling` dict
 *     ({rope_type | type, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings});
 *   - transformers 5: `rope_parameters` holding rope_type, rope_theta and the same factors,
 *     keyed by layer type for Gemma 3 ({full_attention: {...}, sliding_attention: {...}}).
 * `rope_scaling` wins over `rope_parameters` when both are set (as in HF); `rope_theta`
 * outside the dict fills in a missing base. Supported types: default, linear, llama3.
 */
import type { RopeScaling } from '../model/config.js';
import { ConfigFields } from './config-fields.js';

export interface Rope {
  readonly theta: number;
  readonly scaling: RopeScaling;
}

const LAYER_KEYS = ['full_attention', 'sliding_attention'];

/** The object, or undefined when absent, null or empty (Python's falsy `{}`). */
function nonEmpty(c: ConfigFields, field: string): ConfigFields | undefined {
  const o = c.object(field);
  return o && Object.keys(o.obj).length > 0 ? o : undefined;
}

/** One rope dict `p` (may be undefined: default RoPE) with `theta` already resolved. */
function ropeOf(p: ConfigFields | undefined, theta: number, maxPositions: number): Rope {
  if (!p) return { theta, scaling: { type: 'default' } };
  const type = p.str('rope_type', p.has('type') ? p.str('type') : 'default');
  if (p.has('partial_rotary_factor') && p.num('partial_rotary_factor') !== 1) {
    p.fail('partial_rotary_factor', 'is not supported (only full-width RoPE)');
  }
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'default' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: p.num('factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: p.num('factor'),
          lowFreqFactor: p.num('low_freq_factor'),
          highFreqFactor: p.num('high_freq_factor'),
          originalMaxPositionEmbeddings: p.int('original_max_position_embeddings', maxPositions),
        },
      };
    default:
      return p.fail(p.has('rope_type') ? 'rope_type' : 'type', `'${type}' is not supported (supported: default, linear, llama3)`);
  }
}

function checkTopLevel(c: ConfigFields): void {
  if (c.has('partial_rotary_factor') && c.num('partial_rotary_factor') !== 1) {
    c.fail('partial_rotary_factor', 'is not supported (only full-width RoPE)');
  }
}

/** One RoPE for every layer (Llama, Mistral, Qwen 2/3, Gemma 2). */
export function singleRope(c: ConfigFields, maxPositionsDefault: number): Rope {
  checkTopLevel(c);
  const params = nonEmpty(c, 'rope_parameters');
  if (params && LAYER_KEYS.some((k) => params.has(k))) {
    c.fail('rope_parameters', 'is keyed by layer type, which only Gemma 3 configs support here');
  }
  const p = nonEmpty(c, 'rope_scaling') ?? params;
  const theta = p?.has('rope_theta') ? p.num('rope_theta') : c.num('rope_theta', 10_000);
  return ropeOf(p, theta, c.int('max_position_embeddings', maxPositionsDefault));
}

/**
 * Gemma 3's two RoPEs (Gemma3TextConfig.convert_rope_params_to_dict): global layers use
 * `full_attention` (base `rope_theta`, default 1e6, and `rope_scaling` when set); sliding
 * layers use `sliding_attention` (base `rope_local_base_freq`, default 1e4, never scaled).
 */
export function gemma3Ropes(c: ConfigFields, maxPositionsDefault: number): { global: Rope; local: Rope } {
  checkTopLevel(c);
  const params = nonEmpty(c, 'rope_parameters');
  if (params && !LAYER_KEYS.some((k) => params.has(k))) {
    c.fail('rope_parameters', 'must be keyed by layer type for Gemma 3 ({"full_attention": {...}, "sliding_attention": {...}})');
  }
  const maxPositions = c.int('max_position_embeddings', maxPositionsDefault);
  const scaling = nonEmpty(c, 'rope_scaling');
  const full = params?.object('full_attention');
  const merged = full || scaling
    ? new ConfigFields(c.file, { ...(full?.obj ?? {}), ...(scaling?.obj ?? {}) }, scaling ? 'rope_scaling.' : full!.prefix)
    : undefined;
  const globalTheta = merged?.has('rope_theta') ? merged.num('rope_theta') : c.num('rope_theta', 1_000_000);
  const sliding = params?.object('sliding_attention');
  const localTheta = sliding?.has('rope_theta') ? sliding.num('rope_theta') : c.num('rope_local_base_freq', 10_000);
  const local = ropeOf(sliding, localTheta, maxPositions);
  if (local.scaling.type !== 'default') {
    sliding!.fail('rope_type', `'${local.scaling.type}' is not supported on sliding layers (only default RoPE)`);
  }
  return { global: ropeOf(merged, globalTheta, maxPositions), local };
}
