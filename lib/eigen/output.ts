/**
 * The calibrated model directory: model.safetensors (folded-checkpoint.ts), config.json with
 * eigen_attention (and the plan, when it was overridden), the tokenizer and generation files
 * copied, and calibration.json. Written into a fresh directory beside the output and moved
 * into place once complete.
 */
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Checkpoint } from '../hf/safetensors.js';
import { writeSafetensors } from '../hf/safetensors-writer.js';
import type { LayerPlan } from '../plan/types.js';
import { energyKept, singularMass } from './basis.js';
import type { CacheResult } from './caches.js';
import { outputTensors, type FoldedTensor } from './folded-checkpoint.js';
import type { SearchStep } from './search.js';

export interface LayerReport {
  readonly layer: number;
  readonly kv_source: number;
  readonly window: number | null;
  readonly k_rank: number;
  readonly v_rank: number;
  /** Relative error of this layer's o_proj(attention) output, written weights vs the input model. */
  readonly error: number;
  /** Owners only: how the ranks were chosen. */
  readonly threshold?: number;
  readonly k_mass?: number;
  readonly v_mass?: number;
  readonly k_energy?: number;
  readonly v_energy?: number;
  readonly readers?: readonly number[];
  readonly search?: readonly SearchStep[];
}

/** Files copied from the input directory as they are (tokenizer, sampling defaults). */
const COPIED_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'chat_template.json',
  'generation_config.json', 'tokenizer.model', 'vocab.json', 'merges.txt',
];

/** A plan config.json can hold: one sliding window for all sliding layers (HF has one field). */
export function planWindowProblem(plan: LayerPlan): string | undefined {
  const windows = new Set(plan.layers.flatMap((l) => (l.attention.kind === 'sliding' ? [l.attention.window] : [])));
  return windows.size > 1 ? `plan '${plan.name}' mixes sliding windows (${[...windows].join(', ')}); config.json has one sliding_window` : undefined;
}

/** The config.json of the written model: the input's, plus eigen_attention and (with --plan) the plan. */
export function outputConfig(raw: Record<string, unknown>, plan: LayerPlan | undefined, ranks: { k: number[]; v: number[] }, budget: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  if (plan) {
    out.layer_types = plan.layers.map((l) => (l.attention.kind === 'sliding' ? 'sliding_attention' : 'full_attention'));
    out.kv_sources = plan.layers.map((l) => l.kvSource);
    const sliding = plan.layers.find((l) => l.attention.kind === 'sliding')?.attention;
    if (sliding?.kind === 'sliding') out.sliding_window = sliding.window;
  }
  out.eigen_attention = { k_ranks: ranks.k, v_ranks: ranks.v, error_budget: budget };
  return out;
}

/** Per layer: its cache's ranks and its error; owners also how the ranks were chosen. */
export function layerReports(plan: LayerPlan, caches: readonly CacheResult[], layerErrors: ReadonlyMap<number, number>): LayerReport[] {
  return plan.layers.map((l, i) => {
    const c = caches.find((x) => x.owner === l.kvSource)!;
    const base = {
      layer: i, kv_source: l.kvSource, window: l.attention.kind === 'sliding' ? l.attention.window : null,
      k_rank: c.kRank, v_rank: c.vRank, error: layerErrors.get(i)!,
    };
    if (c.owner !== i) return base;
    return {
      ...base,
      threshold: c.threshold,
      k_mass: singularMass(c.keyBasis)[c.kRank],
      v_mass: Math.min(...c.valueBases.map((b) => singularMass(b)[c.vRank])),
      k_energy: energyKept(c.keyBasis, c.kRank),
      v_energy: c.valueBases.reduce((s, b) => s + energyKept(b, c.vRank), 0) / c.valueBases.length,
      readers: c.readers,
      search: c.steps,
    };
  });
}

export interface OutputDir {
  readonly out: string;
  readonly model: string;
  readonly checkpoint: Checkpoint;
  readonly plan: LayerPlan;
  readonly folded: ReadonlyMap<string, FoldedTensor>;
  readonly config: Record<string, unknown>;
  /** calibration.json's contents, made once the weights are written (for its timings). */
  readonly report: () => object;
}

/** Writes the directory; `out` must not exist or be empty. On error nothing is left. */
export async function writeOutputDir(o: OutputDir): Promise<void> {
  const tmp = join(dirname(resolve(o.out)), `.${basename(o.out)}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await writeSafetensors(join(tmp, 'model.safetensors'), outputTensors(o.checkpoint, o.plan, o.folded));
    await writeFile(join(tmp, 'config.json'), `${JSON.stringify(o.config, null, 2)}\n`);
    for (const f of COPIED_FILES) if (existsSync(join(o.model, f))) await copyFile(join(o.model, f), join(tmp, f));
    await writeFile(join(tmp, 'calibration.json'), `${JSON.stringify(o.report(), null, 2)}\n`);
    if (existsSync(o.out)) await rm(o.out, { recursive: true }); // an empty directory (checked before)
    await rename(tmp, o.out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
