/**
 * `calibrate`: a model directory + plain text → a low-rank K/V (Eigen Attention) model
 * directory (docs/eigen.md). Samples of the text run through the engine under the chosen plan
 * while each layer's attention input is captured; then, cache by cache, bases come from the
 * owner's keys and values, ranks from the threshold search against the error budget
 * (search.ts), and the bases are folded into the weights (folded-checkpoint.ts). Everything is
 * checked before the model is loaded; the output directory appears only when complete.
 */
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BackendName } from '../engine/engine.js';
import { chosenPlan, loadEngine, readModelDir } from '../hf/load.js';
import { Checkpoint, type SafetensorsDtype } from '../hf/safetensors.js';
import { toF32 } from '../hf/convert.js';
import { hfTensorName } from '../hf/tensor-names.js';
import { writeSafetensors } from '../hf/safetensors-writer.js';
import type { ProgressCallback } from '../hf/progress.js';
import { kvLayout } from '../kv/layout.js';
import { pagesPerSequence } from '../kv/memory-model.js';
import { loadAddon } from '../native.js';
import { formatPlan } from '../plan/notation.js';
import type { LayerPlan } from '../plan/types.js';
import { Tokenizer } from '../tokenizer/index.js';
import { energyKept, singularMass } from './basis.js';
import { CacheGroup, type CalibrationData } from './cache-group.js';
import { captureAttentionInputs, sampleTokens } from './capture.js';
import { attnName, foldCache, outputTensors, type CacheFold, type FoldedTensor } from './folded-checkpoint.js';
import { NativeOps } from './ops.js';
import { searchRanks, THRESHOLD_STEP, type RankChoice, type SearchStep } from './search.js';

export type CalibrateBackend = BackendName | 'auto';

export interface CalibrateOptions {
  /** The input model directory (HF format). */
  readonly model: string;
  /** Plain-text calibration data. */
  readonly data: string;
  /** The output model directory: must not exist, or be empty. */
  readonly out: string;
  /** Sequences of seqLen tokens (default 32). */
  readonly samples?: number;
  /** Tokens per sequence (default 512). */
  readonly seqLen?: number;
  /** Largest relative attention-output error a layer may take, in [0, 1) (default 0.025). */
  readonly errorBudget?: number;
  /** Run and fold under another layer plan (a preset or the notation). */
  readonly plan?: string;
  /** 'auto' (default): cuda when a device is there, else cpu. */
  readonly backend?: CalibrateBackend;
  readonly threads?: number;
  /** One line per stage and per cache, as it happens. */
  readonly log?: (line: string) => void;
  /** Weight loading progress (e.g. a progress bar). */
  readonly onLoadProgress?: ProgressCallback;
}

export class CalibrationError extends Error {
  override name = 'CalibrationError';
}

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

export interface CalibrationReport {
  readonly model: string;
  readonly data: string;
  readonly plan: string;
  readonly backend: BackendName;
  readonly samples: number;
  readonly seq_len: number;
  readonly error_budget: number;
  readonly threshold_step: number;
  readonly head_dim: number;
  /** Cached K/V bytes per token, written model / input model under the same plan. */
  readonly kv_fraction: number;
  readonly layers: readonly LayerReport[];
  readonly seconds: { readonly load: number; readonly capture: number; readonly search: number; readonly write: number; readonly total: number };
}

/** Files copied from the input directory as they are (tokenizer, sampling defaults). */
const COPIED_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'chat_template.json',
  'generation_config.json', 'tokenizer.model', 'vocab.json', 'merges.txt',
];

function checkOptions(o: CalibrateOptions): { samples: number; seqLen: number; budget: number } {
  const samples = o.samples ?? 32;
  const seqLen = o.seqLen ?? 512;
  const budget = o.errorBudget ?? 0.025;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new CalibrationError(`samples must be an integer >= 1, got ${samples}`);
  if (!Number.isSafeInteger(seqLen) || seqLen < 2) throw new CalibrationError(`seq-len must be an integer >= 2, got ${seqLen}`);
  if (!Number.isFinite(budget) || budget < 0 || budget >= 1) throw new CalibrationError(`error budget must be in [0, 1), got ${budget}`);
  return { samples, seqLen, budget };
}

export function resolveBackend(b: CalibrateBackend | undefined): BackendName {
  const want = b ?? 'auto';
  if (want !== 'auto' && want !== 'cpu' && want !== 'cuda') throw new CalibrationError(`backend must be cpu, cuda or auto, got '${String(want)}'`);
  if (want !== 'auto') return want;
  return loadAddon().backendInfo().cuda.available ? 'cuda' : 'cpu';
}

async function checkPaths(o: CalibrateOptions): Promise<void> {
  const data = await stat(o.data).catch(() => undefined);
  if (!data?.isFile()) throw new CalibrationError(`${o.data}: calibration data file not found (--data takes a plain-text file)`);
  if (resolve(o.out) === resolve(o.model)) throw new CalibrationError(`${o.out}: the output directory must not be the input model directory`);
  const out = await stat(o.out).catch(() => undefined);
  if (out && (!out.isDirectory() || (await readdir(o.out)).length > 0)) {
    throw new CalibrationError(`${o.out}: the output directory already exists and is not empty`);
  }
}

/** The config.json of the written model: the input's, plus eigen_attention and (with --plan) the plan. */
function outputConfig(raw: Record<string, unknown>, plan: LayerPlan, planChanged: boolean, ranks: { k: number[]; v: number[] }, budget: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  if (planChanged) {
    const windows = new Set(plan.layers.flatMap((l) => (l.attention.kind === 'sliding' ? [l.attention.window] : [])));
    if (windows.size > 1) {
      throw new CalibrationError(`plan '${plan.name}' mixes sliding windows (${[...windows].join(', ')}); config.json has one sliding_window`);
    }
    out.layer_types = plan.layers.map((l) => (l.attention.kind === 'sliding' ? 'sliding_attention' : 'full_attention'));
    out.kv_sources = plan.layers.map((l) => l.kvSource);
    if (windows.size === 1) out.sliding_window = [...windows][0];
  }
  out.eigen_attention = { k_ranks: ranks.k, v_ranks: ranks.v, error_budget: budget };
  return out;
}

export async function calibrate(o: CalibrateOptions): Promise<CalibrationReport> {
  const start = performance.now();
  const log = o.log ?? (() => {});
  const { samples, seqLen, budget } = checkOptions(o);
  const backend = resolveBackend(o.backend);
  await checkPaths(o);

  const md = await readModelDir(o.model);
  const cfg = md.config;
  const configFile = join(o.model, 'config.json');
  const raw = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  if (cfg.qkNorm) {
    throw new CalibrationError(`${configFile}: ${md.architecture} normalises q and k per head (q_norm/k_norm); that RMSNorm is not linear, so Eigen Attention cannot fold a basis through it`);
  }
  if (raw.eigen_attention !== undefined) throw new CalibrationError(`${configFile}: the model is already low-rank (it has eigen_attention)`);
  const maxPositions = raw.max_position_embeddings;
  if (typeof maxPositions === 'number' && seqLen > maxPositions) {
    throw new CalibrationError(`seq-len ${seqLen} exceeds the model's context (${configFile}: max_position_embeddings = ${maxPositions})`);
  }
  const plan = chosenPlan(md, o.plan);
  if (!md.hasTokenizer) throw new CalibrationError(`${o.model}: has no tokenizer.json (calibrate tokenizes --data with the model's tokenizer)`);
  const tokenizer = await Tokenizer.fromDir(o.model);
  const tokens = sampleTokens(await readFile(o.data, 'utf8'), tokenizer, samples, seqLen, o.data);
  const tooBig = tokens.flat().find((t) => t >= cfg.vocabSize);
  if (tooBig !== undefined) throw new CalibrationError(`${o.model}: the tokenizer gives id ${tooBig}, outside the model's vocabulary (vocab_size = ${cfg.vocabSize})`);

  // Load, capture, let the engine go: only the captured inputs are needed from here on.
  const layout = kvLayout(plan, { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, dtypeBytes: backend === 'cuda' ? 2 : 4 });
  const engine = await loadEngine(md, {
    plan, backend, threads: o.threads, prefixCache: false,
    kvPages: pagesPerSequence(layout, seqLen, seqLen), onProgress: o.onLoadProgress,
  });
  const loaded = performance.now();
  let inputs: Float32Array[];
  try {
    log(`calibrate: ${md.architecture}, ${cfg.numLayers} layers, plan ${formatPlan(plan)}, ${backend} backend`);
    inputs = await captureAttentionInputs(engine, tokens);
  } finally {
    engine.dispose();
  }
  const captured = performance.now();
  log(`calibrate: captured ${samples} x ${seqLen} tokens in ${((captured - loaded) / 1000).toFixed(1)} s`);

  const cp = await Checkpoint.open(o.model);
  try {
    const weights = new Map<string, { values: Float32Array; dtype: SafetensorsDtype }>();
    const readWeight = async (name: string) => {
      const info = cp.tensors.get(name);
      if (info) weights.set(name, { values: toF32(info.dtype, await cp.read(name)), dtype: info.dtype });
    };
    const owners = plan.layers.map((_, i) => i).filter((i) => plan.layers[i].kvSource === i);
    for (let i = 0; i < cfg.numLayers; i++) {
      for (const w of ['q_proj.weight', 'q_proj.bias', 'o_proj.weight']) await readWeight(attnName(i, w));
      if (owners.includes(i)) for (const w of ['k_proj.weight', 'k_proj.bias', 'v_proj.weight', 'v_proj.bias']) await readWeight(attnName(i, w));
    }
    const data: CalibrationData = {
      config: cfg, plan, samples, seqLen, inputs,
      weight: (canonical) => weights.get(hfTensorName(canonical, false))?.values,
    };
    const ops = new NativeOps(backend);
    const caches: CacheResult[] = [];
    const folded = new Map<string, FoldedTensor>();
    const layerErrors = new Map<number, number>();
    const weightOf = (name: string) => weights.get(name);
    for (const owner of owners) {
      const group = new CacheGroup(ops, data, owner);
      const { key, values } = group.bases();
      const fold = (kRank: number, vRank: number) => foldCache(cfg, { owner, readers: group.readers, keyBasis: key, valueBases: values, kRank, vRank }, weightOf);
      // Each candidate is measured as written: folded, rounded to the stored dtype, computed as the runtime computes.
      const choice = searchRanks(singularMass(key), values.map(singularMass), cfg.headDim, budget, group.readers, (kRank, vRank) =>
        group.errors(group.folded(foldedWeights(owner, kRank, vRank, fold(kRank, vRank), weights, cfg.headDim))),
      );
      for (const [k, v] of fold(choice.kRank, choice.vRank)) folded.set(k, v);
      for (const [j, e] of choice.errors) layerErrors.set(j, e);
      caches.push({ owner, readers: group.readers, keyBasis: key, valueBases: values, ...choice });
      log(
        `calibrate: layer ${owner}${group.readers.length > 1 ? ` (+ readers ${group.readers.slice(1).join(', ')})` : ''}: ` +
          `k rank ${choice.kRank}, v rank ${choice.vRank} of ${cfg.headDim} (threshold ${choice.threshold.toFixed(2)}), error ${Math.max(...choice.errors.values()).toFixed(4)}`,
      );
    }
    const searched = performance.now();

    const cacheOf = (i: number): CacheResult => caches.find((c) => c.owner === plan.layers[i].kvSource)!;
    const ranks = { k: plan.layers.map((_, i) => cacheOf(i).kRank), v: plan.layers.map((_, i) => cacheOf(i).vRank) };
    const layers: LayerReport[] = plan.layers.map((l, i) => {
      const c = cacheOf(i);
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
    const ownerWidth = (w: (c: CacheResult) => number) => caches.reduce((s, c) => s + w(c), 0);
    const kvFraction = ownerWidth((c) => c.kRank + c.vRank) / (caches.length * 2 * cfg.headDim);

    // Write into a fresh directory beside the output, then move it into place.
    const tmp = join(dirname(resolve(o.out)), `.${basename(o.out)}.partial-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      await writeSafetensors(join(tmp, 'model.safetensors'), outputTensors(cp, plan, folded));
      const planChanged = o.plan !== undefined;
      await writeFile(join(tmp, 'config.json'), `${JSON.stringify(outputConfig(raw, plan, planChanged, ranks, budget), null, 2)}\n`);
      for (const f of COPIED_FILES) if (existsSync(join(o.model, f))) await copyFile(join(o.model, f), join(tmp, f));
      const done = performance.now();
      const report: CalibrationReport = {
        model: o.model, data: o.data, plan: formatPlan(plan), backend, samples, seq_len: seqLen,
        error_budget: budget, threshold_step: THRESHOLD_STEP, head_dim: cfg.headDim, kv_fraction: kvFraction, layers,
        seconds: {
          load: (loaded - start) / 1000, capture: (captured - loaded) / 1000, search: (searched - captured) / 1000,
          write: (done - searched) / 1000, total: (done - start) / 1000,
        },
      };
      await writeFile(join(tmp, 'calibration.json'), `${JSON.stringify(report, null, 2)}\n`);
      if (existsSync(o.out)) await rm(o.out, { recursive: true }); // checked empty above
      await rename(tmp, o.out);
      log(`calibrate: wrote ${o.out} (cached K/V at ${(kvFraction * 100).toFixed(1)}% of full width) in ${report.seconds.total.toFixed(1)} s`);
      return report;
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  } finally {
    await cp.close();
  }
}

type CacheResult = CacheFold & RankChoice;

/** The stored tensors of one cache at (kRank, vRank) as CacheGroup.folded takes them (unchanged ones from the input). */
function foldedWeights(
  owner: number,
  kRank: number,
  vRank: number,
  folded: ReadonlyMap<string, FoldedTensor>,
  input: ReadonlyMap<string, { values: Float32Array }>,
  headDim: number,
) {
  const get = (name: string) => folded.get(name)?.values ?? input.get(name)?.values;
  return {
    kProj: get(attnName(owner, 'k_proj.weight'))!,
    kBias: get(attnName(owner, 'k_proj.bias')),
    kUp: kRank < headDim ? folded.get(attnName(owner, 'k_up.weight'))!.values : undefined,
    kRank,
    vProj: get(attnName(owner, 'v_proj.weight'))!,
    vBias: get(attnName(owner, 'v_proj.bias')),
    vRank,
    oProj: (j: number) => get(attnName(j, 'o_proj.weight'))!,
  };
}
