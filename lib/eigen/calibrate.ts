/**
 * `calibrate`: a model directory + plain text → a low-rank K/V (Eigen Attention) model
 * directory (docs/eigen.md). Samples of the text run through the engine under the chosen plan
 * while each layer's attention input is captured (capture.ts); then, cache by cache, bases
 * come from the owner's keys and values and ranks from the threshold search against the error
 * budget (caches.ts); the bases are folded into the weights and the directory written
 * (output.ts). Everything is checked before the model is loaded; the output directory appears
 * only when complete.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BackendName } from '../engine/engine.js';
import { chosenPlan, loadEngine, readModelDir, type ModelDir } from '../hf/load.js';
import { Checkpoint, type SafetensorsDtype } from '../hf/safetensors.js';
import { toF32 } from '../hf/convert.js';
import { hfTensorName } from '../hf/tensor-names.js';
import type { ProgressCallback } from '../hf/progress.js';
import { kvLayout } from '../kv/layout.js';
import { pagesPerSequence } from '../kv/memory-model.js';
import { loadAddon } from '../native.js';
import { formatPlan } from '../plan/notation.js';
import type { LayerPlan } from '../plan/types.js';
import { Tokenizer } from '../tokenizer/index.js';
import { calibrateCaches, type InputWeights } from './caches.js';
import { captureAttentionInputs, sampleTokens } from './capture.js';
import { attnName } from './folded-checkpoint.js';
import { NativeOps } from './ops.js';
import { layerReports, outputConfig, planWindowProblem, writeOutputDir, type LayerReport } from './output.js';
import { THRESHOLD_STEP } from './search.js';

export type { LayerReport } from './output.js';

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
  /** Largest relative attention-output error a layer may take, in (0, 1) (default 0.025). */
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
  /** prepare: checks, tokenizing; capture: loading the weights and the forward passes. */
  readonly seconds: { readonly prepare: number; readonly capture: number; readonly search: number; readonly write: number; readonly total: number };
}

function checkOptions(o: CalibrateOptions): { samples: number; seqLen: number; budget: number } {
  const samples = o.samples ?? 32;
  const seqLen = o.seqLen ?? 512;
  const budget = o.errorBudget ?? 0.025;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new CalibrationError(`samples must be an integer >= 1, got ${samples}`);
  if (!Number.isSafeInteger(seqLen) || seqLen < 2) throw new CalibrationError(`seq-len must be an integer >= 2, got ${seqLen}`);
  if (!Number.isFinite(budget) || budget <= 0 || budget >= 1) throw new CalibrationError(`error budget must be in (0, 1), got ${budget}`);
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

interface Prepared {
  readonly md: ModelDir;
  readonly raw: Record<string, unknown>;
  readonly plan: LayerPlan;
  readonly tokens: number[][];
}

/** Everything about the model, the plan and the data that can fail before loading. */
async function prepare(o: CalibrateOptions, samples: number, seqLen: number): Promise<Prepared> {
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
  const windows = o.plan !== undefined ? planWindowProblem(plan) : undefined;
  if (windows) throw new CalibrationError(windows);
  if (!md.hasTokenizer) throw new CalibrationError(`${o.model}: has no tokenizer.json (calibrate tokenizes --data with the model's tokenizer)`);
  const tokenizer = await Tokenizer.fromDir(o.model);
  const tokens = sampleTokens(await readFile(o.data, 'utf8'), tokenizer, samples, seqLen, o.data);
  const tooBig = tokens.flat().find((t) => t >= cfg.vocabSize);
  if (tooBig !== undefined) throw new CalibrationError(`${o.model}: the tokenizer gives id ${tooBig}, outside the model's vocabulary (vocab_size = ${cfg.vocabSize})`);
  return { md, raw, plan, tokens };
}

/** Loads the model, captures every layer's attention inputs for the samples, lets the engine go. */
async function capture(p: Prepared, o: CalibrateOptions, backend: BackendName, seqLen: number): Promise<Float32Array[]> {
  const cfg = p.md.config;
  const layout = kvLayout(p.plan, { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, dtypeBytes: backend === 'cuda' ? 2 : 4 });
  const engine = await loadEngine(p.md, {
    plan: p.plan, backend, threads: o.threads, prefixCache: false,
    kvPages: pagesPerSequence(layout, seqLen, seqLen), onProgress: o.onLoadProgress,
  });
  try {
    return await captureAttentionInputs(engine, p.tokens);
  } finally {
    engine.dispose();
  }
}

/** The attention weights calibration reads (q/o of every layer, k/v of owners), by HF name. */
async function attentionWeights(cp: Checkpoint, plan: LayerPlan): Promise<InputWeights> {
  const weights = new Map<string, { values: Float32Array; dtype: SafetensorsDtype }>();
  for (const [i, l] of plan.layers.entries()) {
    const names = ['q_proj.weight', 'q_proj.bias', 'o_proj.weight', ...(l.kvSource === i ? ['k_proj.weight', 'k_proj.bias', 'v_proj.weight', 'v_proj.bias'] : [])];
    for (const name of names.map((w) => attnName(i, w))) {
      const info = cp.tensors.get(name);
      if (info) weights.set(name, { values: toF32(info.dtype, await cp.read(name)), dtype: info.dtype });
    }
  }
  return weights;
}

export async function calibrate(o: CalibrateOptions): Promise<CalibrationReport> {
  const start = performance.now();
  const log = o.log ?? (() => {});
  const { samples, seqLen, budget } = checkOptions(o);
  const backend = resolveBackend(o.backend);
  await checkPaths(o);
  const p = await prepare(o, samples, seqLen);
  const cfg = p.md.config;
  log(`calibrate: ${p.md.architecture}, ${cfg.numLayers} layers, plan ${formatPlan(p.plan)}, ${backend} backend`);
  const loadStart = performance.now();
  const inputs = await capture(p, o, backend, seqLen);
  const captured = performance.now();
  log(`calibrate: captured ${samples} x ${seqLen} tokens in ${((captured - loadStart) / 1000).toFixed(1)} s`);

  const cp = await Checkpoint.open(o.model);
  try {
    const weights = await attentionWeights(cp, p.plan);
    const data = { config: cfg, plan: p.plan, samples, seqLen, inputs, weight: (canonical: string) => weights.get(hfTensorName(canonical, false))?.values };
    const { caches, folded, layerErrors } = calibrateCaches(new NativeOps(backend), data, weights, budget, log);
    const searched = performance.now();
    const layers = layerReports(p.plan, caches, layerErrors);
    const kvFraction = caches.reduce((s, c) => s + c.kRank + c.vRank, 0) / (caches.length * 2 * cfg.headDim);
    const ranks = { k: layers.map((l) => l.k_rank), v: layers.map((l) => l.v_rank) };
    let report: CalibrationReport | undefined;
    await writeOutputDir({
      out: o.out, model: o.model, checkpoint: cp, plan: p.plan, folded,
      config: outputConfig(p.raw, o.plan !== undefined ? p.plan : undefined, ranks, budget),
      report: () => {
        const done = performance.now();
        report = {
          model: o.model, data: o.data, plan: formatPlan(p.plan), backend, samples, seq_len: seqLen,
          error_budget: budget, threshold_step: THRESHOLD_STEP, head_dim: cfg.headDim, kv_fraction: kvFraction, layers,
          seconds: {
            prepare: (loadStart - start) / 1000, capture: (captured - loadStart) / 1000, search: (searched - captured) / 1000,
            write: (done - searched) / 1000, total: (done - start) / 1000,
          },
        };
        return report;
      },
    });
    log(`calibrate: wrote ${o.out} (cached K/V at ${(kvFraction * 100).toFixed(1)}% of full width) in ${report!.seconds.total.toFixed(1)} s`);
    return report!;
  } finally {
    await cp.close();
  }
}
