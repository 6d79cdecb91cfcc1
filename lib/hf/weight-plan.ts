/**
 * Which checkpoint tensor becomes which engine weight under a plan, checked in full before
 * anything is read: every needed tensor present, loadable and of the shape config.json
 * implies; nothing in the checkpoint that the config does not explain.
 */
import type { ModelConfig } from '../model/config.js';
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
}

export interface WeightPlanInput {
  readonly architecture: string;
  readonly config: ModelConfig;
  readonly gemmaNorms: boolean;
  /** The checkpoint's own plan, to say why a layer has no K/V. */
  readonly checkpointPlan: LayerPlan;
  /** config.json's path, for messages. */
  readonly configFile: string;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;
const layerOf = (canonical: string): number => Number(/^layers\.(\d+)\./.exec(canonical)?.[1] ?? -1);

/** The tensors to load for `plan`, in file order, with their total stored bytes. */
export function planWeights(cp: Checkpoint, m: WeightPlanInput, plan: LayerPlan): { tensors: PlannedTensor[]; totalBytes: number } {
  const cfg = m.config;
  const used = new Set<string>();
  const tensors: PlannedTensor[] = [];
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
        `tensor '${hf}' has shape ${shapeText(info.shape)} but ${m.configFile} implies ${shapeText(spec.shape)} from ${shapeFields(spec.name, cfg)}`,
      );
    }
    used.add(hf);
    tensors.push({ name: spec.name, info, plusOne: m.gemmaNorms && isNorm(spec.name) });
  }
  checkLeftovers(cp, m, plan, used);
  const fileOrder = new Map(cp.files.map((f, i) => [f, i]));
  tensors.sort((a, b) => fileOrder.get(a.info.file)! - fileOrder.get(b.info.file)! || a.info.byteOffset - b.info.byteOffset);
  return { tensors, totalBytes: tensors.reduce((n, t) => n + t.info.byteLength, 0) };
}

function missing(cp: Checkpoint, m: WeightPlanInput, plan: LayerPlan, canonical: string, hf: string): ModelLoadError {
  const layer = layerOf(canonical);
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
