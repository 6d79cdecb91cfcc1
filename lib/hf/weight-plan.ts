/**
 * Which checkpoint tensor becomes which engine weight under a plan, checked in full before
 * anything is read: every needed tensor present, loadable and of the shape config.json
 * implies; nothing in the checkpoint that the config does not explain.
 *
 * Low-rank checkpoints (eigen_attention): an owner whose keys are at full width may still
 * store them in a basis (k_up [head_dim, head_dim]); the engine then gets plain keys,
 * k_proj and k_bias multiplied by k_up per KV head at load (PlannedTensor.basis).
 */
import type { ModelConfig } from '../model/config.js';
import type { EigenAttention } from './architectures.js';
import { weightSpecs } from '../model/weights.js';
import { isOwner, type LayerPlan } from '../plan/types.js';
import { ModelLoadError } from './errors.js';
import type { Checkpoint } from './safetensors.js';
import { LOADABLE_DTYPES, type TensorInfo } from './safetensors-header.js';
import { hfLayerOf, hfTensorName, isIgnorableTensor, isKvWeight, isNorm, shapeFields } from './tensor-names.js';

export interface PlannedTensor {
  /** Canonical engine name (lib/model/weights.ts). */
  readonly name: string;
  readonly info: TensorInfo;
  /** A Gemma norm: the engine gets 1 + w. */
  readonly plusOne: boolean;
  /** k_proj/k_bias of full-width keys stored in a basis: the engine gets k_up · w per KV head. */
  readonly basis?: TensorInfo;
}

export interface WeightPlanInput {
  readonly architecture: string;
  readonly config: ModelConfig;
  readonly gemmaNorms: boolean;
  /** The checkpoint's own plan, to say why a layer has no K/V. */
  readonly checkpointPlan: LayerPlan;
  /** config.json's path, for messages. */
  readonly configFile: string;
  /** The checkpoint's eigen_attention, when it is a low-rank K/V checkpoint. */
  readonly eigenAttention?: EigenAttention;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;
const layerOf = (canonical: string): number => Number(/^layers\.(\d+)\./.exec(canonical)?.[1] ?? -1);

/** The tensors to load for `plan`, in file order, with their total stored bytes. */
export function planWeights(cp: Checkpoint, m: WeightPlanInput, plan: LayerPlan): { tensors: PlannedTensor[]; totalBytes: number } {
  const cfg = m.config;
  const used = new Set<string>();
  const tensors: PlannedTensor[] = [];
  const bases = fullWidthBases(cp, m, plan, used);
  for (const spec of weightSpecs(cfg, plan)) {
    const hf = hfTensorName(spec.name, m.gemmaNorms);
    const info = cp.tensors.get(hf);
    if (!info) throw missing(cp, m, plan, spec.name, hf);
    if (!LOADABLE_DTYPES.includes(info.dtype)) {
      throw new ModelLoadError({ file: info.file, tensor: hf }, `tensor '${hf}' has dtype ${info.dtype}; only ${LOADABLE_DTYPES.join(', ')} can be loaded`);
    }
    if (!sameShape(info.shape, spec.shape)) {
      throw new ModelLoadError(
        { file: info.file, tensor: hf },
        `tensor '${hf}' has shape ${shapeText(info.shape)} but ${m.configFile} implies ${shapeText(spec.shape)} from ${shapeFields(spec.name, cfg, plan)}`,
      );
    }
    used.add(hf);
    const basis = /\.(k_proj|k_bias)$/.test(spec.name) ? bases.get(layerOf(spec.name)) : undefined;
    tensors.push({ name: spec.name, info, plusOne: m.gemmaNorms && isNorm(spec.name), ...(basis ? { basis } : {}) });
  }
  checkLeftovers(cp, m, plan, used);
  const fileOrder = new Map(cp.files.map((f, i) => [f, i]));
  tensors.sort((a, b) => fileOrder.get(a.info.file)! - fileOrder.get(b.info.file)! || a.info.byteOffset - b.info.byteOffset);
  return { tensors, totalBytes: tensors.reduce((n, t) => n + t.info.byteLength, 0) };
}

/** Key bases of owners whose keys are at full width (eigen_attention k_ranks = head_dim), by layer. */
function fullWidthBases(cp: Checkpoint, m: WeightPlanInput, plan: LayerPlan, used: Set<string>): Map<number, TensorInfo> {
  const out = new Map<number, TensorInfo>();
  if (!m.eigenAttention) return out;
  const D = m.config.headDim;
  plan.layers.forEach((l, i) => {
    if (!isOwner(plan, i) || (l.kvRank?.k ?? D) !== D) return;
    const name = hfTensorName(`layers.${i}.k_up`, m.gemmaNorms);
    const info = cp.tensors.get(name);
    if (!info) return; // plain keys
    if (!LOADABLE_DTYPES.includes(info.dtype)) {
      throw new ModelLoadError({ file: info.file, tensor: name }, `tensor '${name}' has dtype ${info.dtype}; only ${LOADABLE_DTYPES.join(', ')} can be loaded`);
    }
    if (!sameShape(info.shape, [D, D])) {
      throw new ModelLoadError(
        { file: info.file, tensor: name, field: 'eigen_attention.k_ranks' },
        `tensor '${name}' has shape ${shapeText(info.shape)} but ${m.configFile} implies [${D}, ${D}] from [head_dim = ${D}, eigen_attention.k_ranks[${i}] = ${D}]`,
      );
    }
    used.add(name);
    out.set(i, info);
  });
  return out;
}

function missing(cp: Checkpoint, m: WeightPlanInput, plan: LayerPlan, canonical: string, hf: string): ModelLoadError {
  const layer = layerOf(canonical);
  if (canonical.endsWith('.k_up')) {
    const k = plan.layers[layer].kvRank?.k;
    return new ModelLoadError(
      { file: cp.source, tensor: hf, field: 'eigen_attention.k_ranks' },
      `tensor '${hf}' is missing: layer ${layer} keeps its keys at rank ${k} < head_dim = ${m.config.headDim} (${m.configFile} eigen_attention.k_ranks[${layer}]) and needs their basis`,
    );
  }
  if (isKvWeight(canonical)) {
    const own = m.checkpointPlan.layers[layer]?.kvSource;
    const why = own !== undefined && own !== layer ? ` (its config.json kv_sources[${layer}] = ${own}: it reads layer ${own}'s cache)` : '';
    return new ModelLoadError(
      { file: cp.source, tensor: hf, field: why ? 'kv_sources' : undefined },
      `layer ${layer} owns its KV cache under plan '${plan.name}' but the checkpoint has no K/V for it: tensor '${hf}' is missing${why}`,
    );
  }
  const field = canonical === 'lm_head' ? 'tie_word_embeddings' : layer >= 0 ? 'num_hidden_layers' : undefined;
  const hint =
    canonical === 'lm_head' ? `${m.configFile} has tie_word_embeddings = false`
    : layer >= 0 ? `${m.configFile} has num_hidden_layers = ${m.config.numLayers} and a ${m.architecture} layer has this weight`
    : `every ${m.architecture} has it`;
  return new ModelLoadError({ file: cp.source, tensor: hf, field }, `tensor '${hf}' is missing (${hint})`);
}

/** Checkpoint tensors the plan does not load must be ones we may skip. */
function checkLeftovers(cp: Checkpoint, m: WeightPlanInput, plan: LayerPlan, used: ReadonlySet<string>): void {
  const cfg = m.config;
  // K/V weights of layers that read another's cache under this plan are skipped.
  const skippable = new Set<string>();
  plan.layers.forEach((_, i) => {
    if (isOwner(plan, i)) return;
    for (const w of ['k_proj', 'v_proj', 'k_norm', ...(cfg.qkvBias ? ['k_bias', 'v_bias'] : [])]) {
      if (w !== 'k_norm' || cfg.qkNorm) skippable.add(hfTensorName(`layers.${i}.${w}`, m.gemmaNorms));
    }
  });
  if (cfg.tieWordEmbeddings) skippable.add('lm_head.weight'); // tied: the embedding is the head
  for (const [name, info] of cp.tensors) {
    if (used.has(name) || skippable.has(name) || isIgnorableTensor(name)) continue;
    const layer = hfLayerOf(name);
    if (layer !== undefined && layer < cfg.numLayers && name === hfTensorName(`layers.${layer}.k_up`, m.gemmaNorms)) {
      const src = plan.layers[layer].kvSource;
      const why = !m.eigenAttention
        ? `a key basis belongs to low-rank keys, but ${m.configFile} has no eigen_attention`
        : `layer ${layer} reads layer ${src}'s cache (kv_sources[${layer}] = ${src}); only the layer that owns a cache has its key basis`;
      throw new ModelLoadError({ file: info.file, tensor: name, field: m.eigenAttention ? 'kv_sources' : 'eigen_attention' }, `unexpected tensor '${name}': ${why}`);
    }
    if (layer !== undefined && layer >= cfg.numLayers) {
      throw new ModelLoadError(
        { file: info.file, tensor: name, field: 'num_hidden_layers' },
        `tensor '${name}' belongs to layer ${layer} but ${m.configFile} has num_hidden_layers = ${cfg.numLayers}`,
      );
    }
    throw new ModelLoadError(
      { file: info.file, tensor: name },
      `unexpected tensor '${name}': a ${m.architecture} with this ${m.configFile} has no such weight`,
    );
  }
}
