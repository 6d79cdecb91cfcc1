/**
 * `mixattn eval`: quality and cost of one or more models through our engine — held-out
 * perplexity, retrieval accuracy, KV bytes per sequence against `standard`, decode speed —
 * written as one JSON, a markdown table and an SVG chart (docs/eval.md). Everything the run
 * needs is checked (flags, input files, every model directory and tokenizer) before the
 * first model is loaded; the files are rewritten after each model, so a run cut short keeps
 * what it measured.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadAddon } from '../native.js';
import type { BackendName } from '../engine/engine.js';
import {
  evalMarkdown,
  evalSvg,
  evaluateModel,
  EvalProgress,
  modelLabels,
  openModelDir,
  readHeldout,
  readRetrieval,
  type EvalReport,
  type EvalSettings,
} from '../eval/index.js';
import { intOption, listOption, UsageError } from './args.js';
import { deviceName, gitCommit } from './bench.js';
import { parseFlags, processIo, type CliIo } from './generate.js';

export const EVAL_USAGE = `mixattn eval --model DIR [--model DIR ...] --heldout FILE.txt --retrieval FILE.jsonl [options]
                         (per-plan quality and cost table through the engine: .json, .md, .svg)
  --model DIR              a model directory with tokenizer.json (repeatable)
  --heldout FILE           held-out plain text for perplexity
  --retrieval FILE         retrieval set, one {"id","prompt","answer","context_tokens","depth"} a line
  --max-heldout-tokens N   held-out tokens scored from the start of the text (default 65536)
  --context N              held-out window in tokens (default: the model's max_position_embeddings, at most 4096)
  --backend cpu|cuda|auto  compute backend (default auto: cuda where available)
  --threads N              CPU threads (default: all cores)
  --speed-prompt N         prompt tokens per sequence for the speed runs (default 512)
  --speed-tokens N         greedy decode steps timed (default 64)
  --speed-batch LIST       batch sizes for the speed runs (default 1,16)
  --step-tokens N          most tokens one engine step carries (default 2048)
  --retrieval-batch N      retrieval prompts decoded together (default 16)
  --out PREFIX             writes PREFIX.json, PREFIX.md, PREFIX.svg (default bench/results/quality-<date>)`;

const quote = (a: string): string => (/^[\w./:=,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

function resolveBackend(value: string | undefined): BackendName {
  const b = value ?? 'auto';
  if (b === 'cpu' || b === 'cuda') return b;
  if (b !== 'auto') throw new UsageError(`--backend must be cpu, cuda or auto, got '${b}'`);
  return loadAddon().backendInfo().cuda.available ? 'cuda' : 'cpu';
}

export async function runEval(argv: string[], io: CliIo = processIo): Promise<EvalReport | undefined> {
  const options = {
    model: { type: 'string', multiple: true },
    heldout: { type: 'string' },
    retrieval: { type: 'string' },
    'max-heldout-tokens': { type: 'string' },
    context: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'speed-prompt': { type: 'string' },
    'speed-tokens': { type: 'string' },
    'speed-batch': { type: 'string' },
    'step-tokens': { type: 'string' },
    'retrieval-batch': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  const { values: v } = parseFlags({ args: argv, options, strict: true, allowPositionals: false }, 'eval');
  if (v.help) {
    io.stdout(`${EVAL_USAGE}\n`);
    return undefined;
  }
  const dirs = v.model ?? [];
  if (dirs.length === 0) throw new UsageError('eval: --model DIR is required (repeat it to compare models)');
  if (v.heldout === undefined) throw new UsageError('eval: --heldout FILE is required');
  if (v.retrieval === undefined) throw new UsageError('eval: --retrieval FILE is required');
  const speedBatches = listOption(v['speed-batch'], ['1', '16']).map((b) => intOption(b, 'speed-batch', 1));
  if (speedBatches.length === 0) throw new UsageError('--speed-batch must list at least one batch size');
  const context = v.context === undefined ? undefined : intOption(v.context, 'context', 0, 2);
  const settings: EvalSettings = {
    backend: resolveBackend(v.backend),
    threads: intOption(v.threads, 'threads', 0, 0),
    maxHeldoutTokens: intOption(v['max-heldout-tokens'], 'max-heldout-tokens', 65536, 2),
    ...(context !== undefined ? { context } : {}),
    stepTokens: intOption(v['step-tokens'], 'step-tokens', 2048),
    retrievalBatch: intOption(v['retrieval-batch'], 'retrieval-batch', 16),
    speedPrompt: intOption(v['speed-prompt'], 'speed-prompt', 512),
    speedTokens: intOption(v['speed-tokens'], 'speed-tokens', 64),
    speedBatches,
  };
  const date = new Date().toISOString().slice(0, 10);
  const out = v.out ?? `bench/results/quality-${date}`;

  // Everything checked before the first (slow) load.
  const heldoutText = readHeldout(v.heldout);
  const retrievalItems = readRetrieval(v.retrieval);
  const opened = [];
  for (const dir of dirs) {
    const m = await openModelDir(dir);
    if (context !== undefined && context > m.maxPositions) {
      throw new UsageError(`--context ${context} exceeds ${dir}'s max_position_embeddings (${m.maxPositions})`);
    }
    const speedLen = settings.speedPrompt + settings.speedTokens;
    if (speedLen > m.maxPositions) {
      throw new UsageError(`--speed-prompt + --speed-tokens = ${speedLen} exceeds ${dir}'s max_position_embeddings (${m.maxPositions})`);
    }
    opened.push(m);
  }

  const report: EvalReport = {
    eval: 'quality',
    date,
    commit: gitCommit(),
    command: ['mixattn', 'eval', ...argv].map(quote).join(' '),
    device: deviceName(settings.backend),
    backend: settings.backend,
    node: process.version,
    heldoutFile: v.heldout,
    retrievalFile: v.retrieval,
    retrievalItems: retrievalItems.length,
    settings,
    models: [],
  };
  const save = () => {
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(`${out}.json`, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(`${out}.md`, evalMarkdown(report));
    writeFileSync(`${out}.svg`, evalSvg(report));
  };
  const progress = new EvalProgress({ write: io.stderr, isTTY: io === processIo && process.stderr.isTTY === true, columns: process.stderr.columns });
  progress.line(`mixattn eval: ${opened.length} model(s) on ${report.device} (backend ${settings.backend}); ${retrievalItems.length} retrieval prompts`);
  const labels = modelLabels(dirs);
  for (const [i, m] of opened.entries()) {
    const tag = `[${i + 1}/${opened.length} ${labels[i]}]`;
    report.models.push(await evaluateModel(m, labels[i], { heldoutText, retrievalItems }, settings, progress, tag));
    save();
  }
  io.stdout(evalMarkdown(report));
  io.stdout(`\nwrote ${out}.json, ${out}.md, ${out}.svg\n`);
  return report;
}
