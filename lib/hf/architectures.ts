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
 *
 * Low-rank K/V checkpoints (Eigen Attention, docs/hf.md) add
 *
 *   "eigen_attention": { "k_ranks": [L ints], "v_ranks": [L ints], "error_budget": 0.025 }
 *
 * entry i = the per-KV-head width of the keys / values layer i reads (a reader repeats its
 * source's), 1 <= rank <= head_dim; the checkpoint plan carries them as kvRank.
 */
import type { ModelConfig } from '../model/config.js';
import type { AttentionKind, KvRank, LayerPlan } from '../plan/types.js';
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
  /** The `eigen_attention` field of a low-rank K/V checkpoint, checked. */
  readonly eigenAttention?: EigenAttention;
}

/** A low-rank K/V checkpoint's ranks (config.json `eigen_attention`). */
export interface EigenAttention {
  /** Per layer: the width of the cached keys it reads, per KV head. */
  readonly kRanks: readonly number[];
  /** Per layer: the width of the cached values it reads, per KV head. */
  readonly vRanks: readonly number[];
  /** The calibration's error budget, when written. */
  readonly errorBudget?: number;
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

/**
 * `eigen_attention` checked against the model and its plan (every error names the field and
 * the layer), or undefined when absent.
 */
function eigenAttention(c: ConfigFields, config: ModelConfig, plan: LayerPlan): EigenAttention | undefined {
  const e = c.object('eigen_attention');
  if (!e) return undefined;
  if (config.qkNorm) {
    c.fail('eigen_attention', 'is set but this model has q/k norms, which act on the full keys and cannot be folded into low-rank K/V');
  }
  const D = config.headDim;
  const ranks = (field: 'k_ranks' | 'v_ranks'): number[] => {
    const a = e.array(field, config.numLayers, 'num_hidden_layers') ?? e.fail(field, 'is missing');
    return a.map((r, i) =>
      typeof r === 'number' && Number.isSafeInteger(r) && r >= 1 && r <= D
        ? r
        : e.fail(field, `entry ${i} (layer ${i}) is ${shown(r)}; a rank must be an integer in [1, head_dim = ${D}]`),
    );
  };
  const kRanks = ranks('k_ranks');
  const vRanks = ranks('v_ranks');
  plan.layers.forEach((l, i) => {
    const s = l.kvSource;
    for (const [field, r] of [['k_ranks', kRanks], ['v_ranks', vRanks]] as const) {
      if (s !== i && r[i] !== r[s]) {
        e.fail(field, `entry ${i} is ${r[i]} but layer ${i} reads layer ${s}'s cache (kv_sources[${i}] = ${s}), whose rank is ${r[s]}`);
      }
    }
  });
  const errorBudget = e.has('error_budget') ? e.num('error_budget') : undefined;
  return { kRanks, vRanks, ...(errorBudget === undefined ? {} : { errorBudget }) };
}

/** The checkpoint plan with its low-rank widths (kvRank only where a width is below head_dim). */
function withCheckpointRanks(plan: LayerPlan, eigen: EigenAttention, headDim: number): LayerPlan {
  const rank = (i: number): KvRank | undefined =>
    eigen.kRanks[i] < headDim || eigen.vRanks[i] < headDim ? { k: eigen.kRanks[i], v: eigen.vRanks[i] } : undefined;
  return { ...plan, layers: plan.layers.map((l, i) => (rank(i) ? { ...l, kvRank: rank(i) } : l)) };
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
  const plan = checkpointPlan(c, core, attention);
  const eigen = eigenAttention(c, config, plan);
  if (!eigen) return { architecture, family, config, plan, mixattn };
  return { architecture, family, config, plan: withCheckpointRanks(plan, eigen, config.headDim), mixattn, eigenAttention: eigen };
}
