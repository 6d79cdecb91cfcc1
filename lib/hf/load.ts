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
import { mapHfConfig, type HfModelSpec } from './architectures.js';
import { generationDefaults, type GenerationDefaults } from './generation.js';
import { Checkpoint, weightsFile } from './safetensors.js';
import { planWeights } from './weight-plan.js';
import { engineBytes } from './convert.js';

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
  if (typeof override === 'string') {
    // Presets take the checkpoint's sliding window when it has one.
    const w = md.plan.layers.find((l) => l.attention.kind === 'sliding')?.attention;
    return resolvePlan(override, cfg.numLayers, { headDim: cfg.headDim, window: w?.kind === 'sliding' ? w.window : undefined });
  }
  if (override.layers.length !== cfg.numLayers) {
    throw new PlanError(`plan '${override.name}' has ${override.layers.length} layers but ${md.dir} has ${cfg.numLayers} (num_hidden_layers)`);
  }
  validatePlan(override, { headDim: cfg.headDim });
  const ranked = override.layers.findIndex((l) => l.kvRank !== undefined);
  if (ranked >= 0) {
    throw new PlanError(`plan '${override.name}': layer ${ranked} has a kvRank, but HF checkpoints hold full-width K/V projections`, ranked);
  }
  return override;
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
      { architecture: md.architecture, config: md.config, gemmaNorms: spec.family.gemmaNorms, checkpointPlan: md.plan, configFile },
      plan,
    );
    async function* stream(): AsyncGenerator<WeightTensor> {
      let loaded = 0;
      for (const t of tensors) {
        const { dtype, bytes } = engineBytes(t.info.dtype, await cp.read(t.info.name), t.plusOne);
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
