/**
 * Model directories: `readModelDir` reads what a directory says about its model (config,
 * plan, special tokens, sampling defaults) without touching the weights; `loadEngine` checks
 * every tensor against the config and the chosen plan first, then streams the tensors into
 * an Engine one at a time. On any error nothing stays loaded and every file is closed.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { endianness } from 'node:os';
import { Engine, type EngineOptions, type WeightTensor } from '../engine/engine.js';
import type { ModelConfig } from '../model/config.js';
import { PlanError, type LayerPlan } from '../plan/types.js';
import { validatePlan } from '../plan/validate.js';
import { resolvePlan } from '../plan/notation.js';
import { ConfigFields, isObject, type JsonObject } from './config-fields.js';
import { ModelLoadError } from './errors.js';
import { mapHfConfig, type EigenAttention, type HfModelSpec } from './architectures.js';
import { generationDefaults, type GenerationDefaults } from './generation.js';
import { Checkpoint, weightsFile } from './safetensors.js';
import { planWeights } from './weight-plan.js';
import { engineBytes, toF32 } from './convert.js';
import type { PlannedTensor } from './weight-plan.js';

export type { GenerationDefaults } from './generation.js';

export interface ModelDir {
  readonly dir: string;
  /** The HF class, e.g. 'Gemma3ForCausalLM'. */
  readonly architecture: string;
  readonly config: ModelConfig;
  /** The plan the checkpoint was trained with (its own attention and KV sharing). */
  readonly plan: LayerPlan;
  /** True when config.json uses the MixAttention extension (kv_sources). */
  readonly mixattn: boolean;
  /** A low-rank K/V checkpoint's ranks (config.json eigen_attention); `plan` carries them as kvRank. */
  readonly eigenAttention?: EigenAttention;
  readonly generation: GenerationDefaults;
  /** tokenizer.json is present. */
  readonly hasTokenizer: boolean;
}

export interface LoadEngineOptions extends EngineOptions {
  /** Run under another plan (a LayerPlan, a preset name or the notation); default: the checkpoint's. */
  readonly plan?: LayerPlan | string;
  /** Called after each tensor reaches the engine, with stored bytes loaded so far and in all. */
  readonly onProgress?: (loadedBytes: number, totalBytes: number, tensorName: string) => void;
}

async function readJson(file: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelLoadError({ file }, code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError({ file }, `is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(parsed)) throw new ModelLoadError({ file }, 'must hold a JSON object');
  return parsed;
}

interface Inspected {
  readonly modelDir: ModelDir;
  readonly spec: HfModelSpec;
  readonly configFile: string;
}

async function inspect(dir: string): Promise<Inspected> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) throw new ModelLoadError({ file: dir }, 'model directory does not exist');
  if (!st.isDirectory()) throw new ModelLoadError({ file: dir }, 'is not a directory (expected an HF model directory)');
  const configFile = join(dir, 'config.json');
  const json = await readJson(configFile);
  const spec = mapHfConfig(json, configFile);
  weightsFile(dir); // fails, naming the directory, when there are no weights
  const genFile = join(dir, 'generation_config.json');
  const gen = existsSync(genFile) ? new ConfigFields(genFile, await readJson(genFile)) : undefined;
  const modelDir: ModelDir = {
    dir,
    architecture: spec.architecture,
    config: spec.config,
    plan: spec.plan,
    mixattn: spec.mixattn,
    ...(spec.eigenAttention ? { eigenAttention: spec.eigenAttention } : {}),
    generation: generationDefaults(gen, new ConfigFields(configFile, json)),
    hasTokenizer: existsSync(join(dir, 'tokenizer.json')),
  };
  return { modelDir, spec, configFile };
}

/** What a model directory holds, without reading any weights. */
export async function readModelDir(dir: string): Promise<ModelDir> {
  return (await inspect(dir)).modelDir;
}

/** The plan to run: the override (checked against the model) or the checkpoint's own. */
export function chosenPlan(md: ModelDir, override: LayerPlan | string | undefined): LayerPlan {
  const cfg = md.config;
  if (override === undefined) return md.plan;
  let plan: LayerPlan;
  if (typeof override === 'string') {
    // Presets take the checkpoint's sliding window when it has one.
    const w = md.plan.layers.find((l) => l.attention.kind === 'sliding')?.attention;
    plan = resolvePlan(override, cfg.numLayers, { headDim: cfg.headDim, window: w?.kind === 'sliding' ? w.window : undefined });
  } else {
    if (override.layers.length !== cfg.numLayers) {
      throw new PlanError(`plan '${override.name}' has ${override.layers.length} layers but ${md.dir} has ${cfg.numLayers} (num_hidden_layers)`);
    }
    // A low-rank checkpoint's ranks are filled in (and the result validated) below.
    plan = md.eigenAttention ? override : validatePlan(override, { headDim: cfg.headDim });
  }
  if (md.eigenAttention) return withCheckpointRanks(md, plan);
  const ranked = plan.layers.findIndex((l) => l.kvRank !== undefined);
  if (ranked >= 0) {
    throw new PlanError(`plan '${plan.name}': layer ${ranked} has a kvRank, but this checkpoint holds full-width K/V projections (no eigen_attention)`, ranked);
  }
  return plan;
}

/**
 * An override of a low-rank checkpoint: the same kv sources (each reader's o_proj has its
 * source's V basis folded in), windows as the override says, the checkpoint's ranks.
 */
function withCheckpointRanks(md: ModelDir, override: LayerPlan): LayerPlan {
  const rankText = (r: LayerPlan['layers'][number]['kvRank']) => (r ? `{k: ${r.k}, v: ${r.v}}` : 'full width');
  const layers = override.layers.map((l, i) => {
    const own = md.plan.layers[i];
    if (l.kvSource !== own.kvSource) {
      throw new PlanError(
        `plan '${override.name}': layer ${i} reads layer ${l.kvSource}, but in the low-rank checkpoint ${md.dir} it reads layer ${own.kvSource} ` +
          `(kv_sources[${i}]); the kv sources of a low-rank checkpoint cannot change (each reader's o_proj holds its source's value basis)`,
        i,
      );
    }
    if (l.kvRank !== undefined && (l.kvRank.k !== own.kvRank?.k || l.kvRank.v !== own.kvRank?.v)) {
      throw new PlanError(`plan '${override.name}': layer ${i} has kvRank ${rankText(l.kvRank)}, but the checkpoint's is ${rankText(own.kvRank)} (eigen_attention)`, i);
    }
    const { kvRank: _given, ...rest } = l;
    return own.kvRank ? { ...rest, kvRank: own.kvRank } : rest;
  });
  return validatePlan({ name: override.name, layers }, { headDim: md.config.headDim });
}

/** Full-width keys stored in a basis: W ← U·W per KV head ([heads·D, cols], U [D, D]), in f32. */
function foldKeyBasis(w: Float32Array, u: Float32Array, shape: readonly number[], headDim: number): Uint8Array {
  const cols = shape.length === 2 ? shape[1] : 1;
  const heads = shape[0] / headDim;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let a = 0; a < headDim; a++) {
      for (let c = 0; c < cols; c++) {
        let sum = 0;
        for (let j = 0; j < headDim; j++) sum += u[a * headDim + j] * w[(h * headDim + j) * cols + c];
        out[(h * headDim + a) * cols + c] = sum;
      }
    }
  }
  return new Uint8Array(out.buffer);
}

/**
 * Loads a model directory (a path, or what readModelDir returned) into an Engine. Everything is checked before the first tensor is
 * read. Tensors are then read one at a time, asynchronously, as Engine.createAsync consumes
 * them: peak memory is the engine's copy plus one tensor, and the event loop stays free.
 */
export async function loadEngine(model: string | ModelDir, opts: LoadEngineOptions = {}): Promise<Engine> {
  if (endianness() !== 'LE') throw new Error('loadEngine: safetensors data is little-endian; big-endian hosts are not supported');
  const { plan: override, onProgress, ...engineOpts } = opts;
  const modelDir = typeof model === 'string' ? model : model.dir;
  const { modelDir: md, spec, configFile } = await inspect(modelDir); // re-read: the directory may have changed
  const plan = chosenPlan(md, override);
  const cp = await Checkpoint.open(modelDir);
  try {
    const { tensors, totalBytes } = planWeights(
      cp,
      { architecture: md.architecture, config: md.config, gemmaNorms: spec.family.gemmaNorms, checkpointPlan: md.plan, configFile, eigenAttention: md.eigenAttention },
      plan,
    );
    async function engineTensor(t: PlannedTensor): Promise<{ dtype: 'f32' | 'bf16'; bytes: Uint8Array }> {
      if (!t.basis) return engineBytes(t.info.dtype, await cp.read(t.info.name), t.plusOne);
      const w = toF32(t.info.dtype, await cp.read(t.info.name));
      const u = toF32(t.basis.dtype, await cp.read(t.basis.name));
      return { dtype: 'f32', bytes: foldKeyBasis(w, u, t.info.shape, md.config.headDim) };
    }
    async function* stream(): AsyncGenerator<WeightTensor> {
      let loaded = 0;
      for (const t of tensors) {
        const { dtype, bytes } = await engineTensor(t);
        yield { name: t.name, shape: t.info.shape, dtype, bytes };
        loaded += t.info.byteLength;
        onProgress?.(loaded, totalBytes, t.info.name);
      }
    }
    return await Engine.createAsync(md.config, plan, stream(), engineOpts);
  } finally {
    await cp.close();
  }
}
