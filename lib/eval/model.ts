/**
 * One model's evaluation: open the directory (config, plan, tokenizer; checked before any
 * weight is read), load it into an engine sized for the work, then held-out perplexity,
 * retrieval, speed, and the costs that follow from the config and plan; with a reference
 * (the uncompressed model, loaded once for the run) the held-out pass runs both engines and
 * compares them (reference.ts).
 */
import { basename } from 'node:path';
import type { BackendName, Engine } from '../engine/engine.js';
import { loadEngine, readModelDir, type ModelDir } from '../hf/index.js';
import { progressBar } from '../hf/progress.js';
import { kvLayout, type KvLayout } from '../kv/layout.js';
import { pagesPerSequence } from '../kv/memory-model.js';
import { configMaxPositions } from '../server/options.js';
import { Tokenizer } from '../tokenizer/index.js';
import { kvCost, KV_BLOCK_SIZE, parameterCount, planInfo, type KvCost, type PlanInfo } from './cost.js';
import { EvalInputError, type RetrievalItem } from './inputs.js';
import { kvRanks, type KvRanks } from './kv-ranks.js';
import { heldoutTokens, perplexity, type PerplexityResult } from './perplexity.js';
import { compareWithReference, type ReferenceComparison } from './reference.js';
import { encodeRetrieval, retrieval, type RetrievalResult } from './retrieval.js';
import { speed, type SpeedRun } from './speed.js';
import type { EvalProgress } from './progress.js';

/** Held-out windows are never longer than this unless --context says so. */
export const DEFAULT_CONTEXT_CAP = 4096;
/** max_position_embeddings when config.json has none. */
const FALLBACK_MAX_POSITIONS = 2048;

export interface EvalSettings {
  readonly backend: BackendName;
  readonly threads: number;
  readonly maxHeldoutTokens: number;
  /** Held-out window; the model's max_position_embeddings capped at DEFAULT_CONTEXT_CAP unless given. */
  readonly context?: number;
  readonly stepTokens: number;
  readonly retrievalBatch: number;
  readonly speedPrompt: number;
  readonly speedTokens: number;
  readonly speedBatches: readonly number[];
}

export interface OpenedModel {
  readonly dir: string;
  readonly modelDir: ModelDir;
  readonly tokenizer: Tokenizer;
  readonly maxPositions: number;
}

export interface ModelEval {
  readonly dir: string;
  /** Short name for tables and the chart (the directory's name). */
  readonly label: string;
  readonly architecture: string;
  readonly plan: PlanInfo;
  readonly params: number;
  readonly config: {
    readonly layers: number;
    readonly hidden: number;
    readonly heads: number;
    readonly kvHeads: number;
    readonly headDim: number;
    readonly intermediate: number;
    readonly vocab: number;
    readonly maxPositions: number;
  };
  readonly backend: BackendName;
  readonly kvDtype: 'f32' | 'bf16';
  readonly weightBytes: number;
  readonly loadSeconds: number;
  /** Wall time of this model's whole evaluation, load included. */
  readonly seconds: number;
  readonly heldout: PerplexityResult;
  readonly retrieval: RetrievalResult;
  readonly kv: KvCost;
  /** The K/V ranks it caches, and its eigen_attention error budget. */
  readonly kvRanks: KvRanks;
  readonly speed: readonly SpeedRun[];
  /** Against --reference, over the held-out windows. */
  readonly vsReference?: ReferenceComparison;
}

/** The reference model of `eval --reference`, loaded once and run beside each model. */
export interface LoadedReference {
  readonly opened: OpenedModel;
  readonly label: string;
  readonly engine: Engine;
  readonly kv: KvCost;
}

/** Reads what a model directory says, and its tokenizer, without touching the weights. */
export async function openModelDir(dir: string): Promise<OpenedModel> {
  const modelDir = await readModelDir(dir);
  if (!modelDir.hasTokenizer) {
    throw new EvalInputError(`${dir}: has no tokenizer.json (eval encodes the held-out text and the retrieval prompts with the model's own tokenizer)`);
  }
  const tokenizer = await Tokenizer.fromDir(dir);
  const maxPositions = (await configMaxPositions(dir)) ?? FALLBACK_MAX_POSITIONS;
  return { dir, modelDir, tokenizer, maxPositions };
}

export interface EvalInputs {
  readonly heldoutText: string;
  readonly retrievalItems: readonly RetrievalItem[];
}

/** The held-out window a model is evaluated with. */
export const heldoutContext = (m: OpenedModel, s: EvalSettings): number => s.context ?? Math.min(m.maxPositions, DEFAULT_CONTEXT_CAP);

const kvDtypeOf = (s: EvalSettings) => (s.backend === 'cuda' ? 'bf16' : 'f32');

/** The engine's KV layout for a model under the evaluation's backend. */
function engineLayout(md: ModelDir, s: EvalSettings): KvLayout {
  const cfg = md.config;
  return kvLayout(md.plan, { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, blockSize: KV_BLOCK_SIZE, dtypeBytes: kvDtypeOf(s) === 'bf16' ? 2 : 4 });
}

/** Pages `seqs` sequences growing to n in steps of `chunk` hold, plus two blocks per class and sequence of slack. */
function poolPages(layout: KvLayout, seqs: number, n: number, chunk: number): number {
  const pagesPerBlock = layout.classes.reduce((a, c) => a + c.pagesPerBlock, 0);
  return seqs * (pagesPerSequence(layout, n, Math.min(n, chunk)) + 2 * pagesPerBlock);
}

/** Pages the held-out pass holds at once: the windows one step carries. */
function heldoutPages(layout: KvLayout, context: number, stepTokens: number): number {
  const chunk = Math.min(context, stepTokens);
  return poolPages(layout, Math.max(1, Math.floor(stepTokens / chunk)), context, chunk);
}

/** Loads the reference for held-out windows of up to `context` tokens (the only phase it runs). */
export async function loadReference(r: OpenedModel, label: string, context: number, s: EvalSettings): Promise<LoadedReference> {
  const engine = await loadEngine(r.modelDir, {
    backend: s.backend,
    threads: s.threads,
    kvDtype: kvDtypeOf(s),
    kvPages: heldoutPages(engineLayout(r.modelDir, s), context, s.stepTokens),
    prefixCache: false,
    onProgress: progressBar({ label: `[reference ${label}] loading` }),
  });
  return { opened: r, label, engine, kv: kvCost(r.modelDir.config, r.modelDir.plan, r.maxPositions) };
}

export async function evaluateModel(
  m: OpenedModel,
  label: string,
  inputs: EvalInputs,
  s: EvalSettings,
  progress: EvalProgress,
  tag: string,
  reference?: LoadedReference,
): Promise<ModelEval> {
  const { modelDir: md, tokenizer } = m;
  const cfg = md.config;
  const context = heldoutContext(m, s);
  const ids = heldoutTokens(tokenizer, inputs.heldoutText, s.maxHeldoutTokens);

  // KV pool: the most any phase holds at once (the chunk sizes below are the ones each phase uses).
  const kvDtype = kvDtypeOf(s);
  const layout = engineLayout(md, s);
  const pages = (seqs: number, n: number, chunk: number) => poolPages(layout, seqs, n, chunk);
  const encoded = encodeRetrieval(tokenizer, inputs.retrievalItems, cfg.vocabSize);
  const retrievalLongest = Math.max(...encoded.map((e) => e.prompt.length + e.newTokens));
  const kvPages = Math.max(
    heldoutPages(layout, context, s.stepTokens),
    pages(s.retrievalBatch, retrievalLongest, Math.max(16, Math.floor(s.stepTokens / s.retrievalBatch))),
    ...s.speedBatches.map((b) => pages(b, s.speedPrompt + s.speedTokens + 1, Math.max(16, Math.floor(s.stepTokens / b)))),
  );

  const t0 = performance.now();
  const engine = await loadEngine(md, {
    backend: s.backend,
    threads: s.threads,
    kvDtype,
    kvPages,
    prefixCache: false,
    onProgress: progressBar({ label: `${tag} loading` }),
  });
  try {
    const loadSeconds = (performance.now() - t0) / 1000;
    const pplOpts = { context, stepTokens: s.stepTokens, onProgress: (d: number, t: number) => progress.update(`${tag} perplexity, tokens`, d, t) };
    const kv = kvCost(cfg, md.plan, m.maxPositions);
    let heldout: PerplexityResult;
    let vsReference: ReferenceComparison | undefined;
    if (reference) {
      // One pass for both: the model's perplexity comes out of the comparison.
      const c = await compareWithReference(engine, reference.engine, ids, pplOpts);
      heldout = c.model;
      vsReference = {
        reference: reference.label,
        referenceDir: reference.opened.dir,
        positions: c.model.scoredTokens,
        meanKl: c.meanKl,
        top1Agreement: c.top1Agreement,
        referenceMeanNll: c.reference.meanNll,
        referencePpl: c.reference.ppl,
        referenceKvBytesPerToken: reference.kv.bytesPerToken,
        kvVsReference: kv.bytesPerToken / reference.kv.bytesPerToken,
      };
    } else {
      heldout = await perplexity(engine, ids, pplOpts);
    }
    progress.line(`${tag} perplexity ${heldout.ppl.toFixed(3)} (mean NLL ${heldout.meanNll.toFixed(4)}) over ${heldout.scoredTokens} tokens, ${heldout.windows} windows of ${context} (${heldout.seconds.toFixed(1)} s)`);
    if (vsReference) {
      progress.line(
        `${tag} vs ${vsReference.reference}: KL ${vsReference.meanKl.toExponential(3)} nats, top-1 agreement ${(100 * vsReference.top1Agreement).toFixed(2)}%, reference perplexity ${vsReference.referencePpl.toFixed(3)}`,
      );
    }
    const ret = await retrieval(
      engine,
      tokenizer,
      inputs.retrievalItems,
      { batch: s.retrievalBatch, stepTokens: s.stepTokens, onProgress: (d, t) => progress.update(`${tag} retrieval, prompts`, d, t) },
      encoded,
    );
    progress.line(`${tag} retrieval ${ret.correct}/${ret.n} = ${(100 * ret.accuracy).toFixed(1)}% (${ret.seconds.toFixed(1)} s)`);
    const runs = await speed(engine, ids, {
      promptTokens: s.speedPrompt,
      newTokens: s.speedTokens,
      batches: s.speedBatches,
      stepTokens: s.stepTokens,
      onProgress: (d, t) => progress.update(`${tag} speed, batch sizes`, d, t),
    });
    progress.line(`${tag} decode ${runs.map((r) => `b${r.batch} ${r.decodeTokensPerS.toFixed(1)} tok/s`).join(', ')}; prefill b1 ${runs[0].prefillTokensPerS.toFixed(0)} tok/s`);
    return {
      dir: m.dir,
      label,
      architecture: md.architecture,
      plan: planInfo(md.plan),
      params: parameterCount(cfg, md.plan),
      config: {
        layers: cfg.numLayers,
        hidden: cfg.hiddenSize,
        heads: cfg.numHeads,
        kvHeads: cfg.numKvHeads,
        headDim: cfg.headDim,
        intermediate: cfg.intermediateSize,
        vocab: cfg.vocabSize,
        maxPositions: m.maxPositions,
      },
      backend: s.backend,
      kvDtype,
      weightBytes: engine.weightBytes,
      loadSeconds,
      seconds: (performance.now() - t0) / 1000,
      heldout,
      retrieval: ret,
      kv,
      kvRanks: kvRanks(cfg, md.plan, md.eigenAttention?.errorBudget),
      speed: runs,
      ...(vsReference ? { vsReference } : {}),
    };
  } finally {
    engine.dispose();
  }
}

/** Directory names as labels, made unique with a suffix where two are the same. */
export function modelLabels(dirs: readonly string[]): string[] {
  const names = dirs.map((d) => basename(d.replace(/\/+$/, '')) || d);
  return names.map((n, i) => (names.filter((x) => x === n).length > 1 ? `${n}#${names.slice(0, i + 1).filter((x) => x === n).length}` : n));
}
