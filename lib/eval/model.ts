/**
 * One model's evaluation: open the directory (config, plan, tokenizer; checked before any
 * weight is read), load it into an engine sized for the work, then held-out perplexity,
 * retrieval, speed, and the costs that follow from the config and plan.
 */
import { basename } from 'node:path';
import type { BackendName } from '../engine/engine.js';
import { loadEngine, readModelDir, type ModelDir } from '../hf/index.js';
import { progressBar } from '../hf/progress.js';
import { kvLayout } from '../kv/layout.js';
import { pagesPerSequence } from '../kv/memory-model.js';
import { configMaxPositions } from '../server/options.js';
import { Tokenizer } from '../tokenizer/index.js';
import { kvCost, KV_BLOCK_SIZE, parameterCount, planInfo, type KvCost, type PlanInfo } from './cost.js';
import { EvalInputError, type RetrievalItem } from './inputs.js';
import { heldoutTokens, perplexity, type PerplexityResult } from './perplexity.js';
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
  readonly speed: readonly SpeedRun[];
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

export async function evaluateModel(m: OpenedModel, label: string, inputs: EvalInputs, s: EvalSettings, progress: EvalProgress, tag: string): Promise<ModelEval> {
  const { modelDir: md, tokenizer } = m;
  const cfg = md.config;
  const context = s.context ?? Math.min(m.maxPositions, DEFAULT_CONTEXT_CAP);
  const ids = heldoutTokens(tokenizer, inputs.heldoutText, s.maxHeldoutTokens);

  // KV pool: the most any phase holds at once (the chunk sizes below are the ones each phase
  // uses), plus two blocks per class and sequence of slack.
  const kvDtype = s.backend === 'cuda' ? 'bf16' : 'f32';
  const layout = kvLayout(md.plan, { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, blockSize: KV_BLOCK_SIZE, dtypeBytes: kvDtype === 'bf16' ? 2 : 4 });
  const pagesPerBlock = layout.classes.reduce((a, c) => a + c.pagesPerBlock, 0);
  const pages = (seqs: number, n: number, chunk: number) => seqs * (pagesPerSequence(layout, n, Math.min(n, chunk)) + 2 * pagesPerBlock);
  const pplChunk = Math.min(context, s.stepTokens);
  const encoded = encodeRetrieval(tokenizer, inputs.retrievalItems, cfg.vocabSize);
  const retrievalLongest = Math.max(...encoded.map((e) => e.prompt.length + e.newTokens));
  const kvPages = Math.max(
    pages(Math.max(1, Math.floor(s.stepTokens / pplChunk)), context, pplChunk),
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
    const heldout = await perplexity(engine, ids, {
      context,
      stepTokens: s.stepTokens,
      onProgress: (d, t) => progress.update(`${tag} perplexity, tokens`, d, t),
    });
    progress.line(`${tag} perplexity ${heldout.ppl.toFixed(3)} (mean NLL ${heldout.meanNll.toFixed(4)}) over ${heldout.scoredTokens} tokens, ${heldout.windows} windows of ${context} (${heldout.seconds.toFixed(1)} s)`);
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
      kv: kvCost(cfg, md.plan, m.maxPositions),
      speed: runs,
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
