/**
 * config.json → our ModelConfig and the checkpoint's own LayerPlan, for the supported HF
 * families (arch-llama.ts, arch-gemma.ts), in both config formats (rope.ts), plus the
 * MixAttention config extension (docs/hf.md):
 *
 *   "kv_sources": [0, 1, 1, 3, ...]   entry i = the layer whose KV cache layer i reads
 *   "layer_types": ["full_attention" | "sliding_attention", ...]   required with kv_sources
 *   "sliding_window": W               required when a layer is sliding
 *
 * With kv_sources, layer_types and sliding_window are read as written for every family
 * (Qwen's use_sliding_window/max_window_layers and Mistral's all-sliding rule do not apply).
 */
import type { ModelConfig } from '../model/config.js';
import type { AttentionKind, LayerPlan } from '../plan/types.js';
import { planViolations } from '../plan/validate.js';
import { ConfigFields, isObject } from './config-fields.js';
import { ModelLoadError, shown } from './errors.js';
import { attentionOf, coreDims, layerTypes, type CoreDims, type Family } from './arch-common.js';
import { llama, mistral, qwen2, qwen3 } from './arch-llama.js';
import { gemma2, gemma3 } from './arch-gemma.js';

export type { Family } from './arch-common.js';

export const FAMILIES: readonly Family[] = [llama, mistral, qwen2, qwen3, gemma2, gemma3];

export const SUPPORTED_ARCHITECTURES: readonly string[] = FAMILIES.flatMap((f) => f.architectures);

export interface HfModelSpec {
  /** The HF class name, e.g. 'LlamaForCausalLM'. */
  readonly architecture: string;
  readonly family: Family;
  readonly config: ModelConfig;
  /** The plan the checkpoint was trained with. */
  readonly plan: LayerPlan;
  /** True when the config carries the MixAttention `kv_sources` extension. */
  readonly mixattn: boolean;
}

const supportedList = (): string => SUPPORTED_ARCHITECTURES.join(', ');

/**
 * The family from `model_type` (what transformers' Auto classes go by) and `architectures`
 * (what the checkpoint says it is); either may be absent, but they may not disagree.
 */
function pickFamily(c: ConfigFields): { family: Family; architecture: string } {
  const archs = c.raw('architectures');
  const arch = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  if (archs !== undefined && archs !== null && arch === undefined) {
    c.fail('architectures', `must be a list of class names (got ${shown(archs)})`);
  }
  const modelType = c.has('model_type') ? c.str('model_type') : undefined;
  const byArch = arch === undefined ? undefined : FAMILIES.find((f) => f.architectures.includes(arch));
  const byType = modelType === undefined ? undefined : FAMILIES.find((f) => f.modelTypes.includes(modelType));
  const unknown = (arch !== undefined && !byArch) || (modelType !== undefined && !byType) || (!arch && !modelType);
  if (unknown) {
    const what = [arch && `architecture '${arch}'`, modelType && `model_type '${modelType}'`].filter(Boolean).join(' with ');
    throw new ModelLoadError(
      { file: c.file, field: arch && !byArch ? 'architectures' : 'model_type' },
      `${what || 'neither architectures nor model_type is set'}: not a supported model; supported architectures: ${supportedList()}`,
    );
  }
  if (byArch && byType && byArch !== byType) {
    c.fail('model_type', `'${modelType}' does not match architecture '${arch}' (expected ${byArch.modelTypes.join(' or ')})`);
  }
  const family = (byArch ?? byType)!;
  return { family, architecture: arch ?? family.architectures[0] };
}

/** The extension's attention: layer_types and sliding_window as written. */
function extensionAttention(c: ConfigFields, core: CoreDims): AttentionKind[] {
  const types = layerTypes(c, core.numLayers) ?? c.fail('layer_types', 'is required with kv_sources (the MixAttention config extension)');
  return attentionOf(c, types, c.intOrNull('sliding_window', null), ' in layer_types');
}

function checkpointPlan(c: ConfigFields, core: CoreDims, attention: readonly AttentionKind[]): LayerPlan {
  const raw = c.array('kv_sources', core.numLayers, 'num_hidden_layers');
  const sources = attention.map((_, i) => {
    if (!raw) return i;
    const s = raw[i];
    return typeof s === 'number' && Number.isSafeInteger(s) ? s : c.fail('kv_sources', `entry ${i} is ${shown(s)}, not a layer index`);
  });
  const plan: LayerPlan = { name: 'checkpoint', layers: attention.map((a, i) => ({ attention: a, kvSource: sources[i] })) };
  const v = planViolations(plan, { headDim: core.headDim });
  if (v.length > 0) {
    c.fail(raw ? 'kv_sources' : 'layer_types', `does not make a valid layer plan: ${v[0].message}${v.length > 1 ? ` (and ${v.length - 1} more)` : ''}`);
  }
  return plan;
}

/** Maps a parsed config.json (from `file`, for messages) to our config and plan. */
export function mapHfConfig(json: unknown, file: string): HfModelSpec {
  if (!isObject(json)) throw new ModelLoadError({ file }, `must hold a JSON object (got ${shown(json)})`);
  const c = new ConfigFields(file, json);
  const { family, architecture } = pickFamily(c);
  const core = coreDims(c, family.defaults);
  const mixattn = c.has('kv_sources');
  const attention = mixattn ? extensionAttention(c, core) : family.attention(c, core);
  const config = family.config(c, core, attention);
  return { architecture, family, config, plan: checkpointPlan(c, core, attention), mixattn };
}
