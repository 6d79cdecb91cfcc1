/**
 * `mixattn inspect`: KV cost of layer plans side by side — bytes per token, bytes at a
 * context length, and the maximum concurrent sequences in a memory budget, both as the
 * memory model predicts and as the block manager actually reaches.
 *
 * Low-rank K/V (Eigen Attention): `--kv-rank` keeps every plan's caches at a rank, and a
 * `--model` checkpoint with eigen_attention brings its own per-layer ranks; each such plan is
 * shown at full width and at rank, so the saving of the ranks and the plan's combine in the
 * "vs standard" column.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resolvePlan } from '../plan/notation.js';
import { PRESET_NAMES } from '../plan/presets.js';
import { withKvRank, withoutKvRank } from '../plan/ranks.js';
import type { LayerPlan } from '../plan/types.js';
import { kvReport, type KvReport } from '../kv/report.js';
import { formatBytes, parseBytes } from '../kv/bytes.js';
import { mapHfConfig } from '../hf/architectures.js';
import { ModelLoadError } from '../hf/errors.js';
import { formatTable } from './table.js';
import { intOption, kvRankOption, UsageError } from './args.js';

export const INSPECT_USAGE = `mixattn inspect [options]
  --model DIR       take layers, KV heads, head width, window and plan from a model's
                    config.json (plan 'checkpoint'; low-rank checkpoints: their own ranks)
  --layers N        layer count (default 24)
  --kv-heads N      KV heads (default 8)
  --head-dim N      head width (default 128)
  --context N       tokens per sequence (default 32768)
  --budget BYTES    KV memory budget, e.g. 40GiB (default 40GiB)
  --plan LIST       presets or notations, ';'-separated if notations contain commas
                    (default: every preset)
  --window N        sliding window of the presets (default 1024)
  --kv-rank R       keep K/V at a rank (Eigen Attention): R for both, or k=R1,v=R2;
                    every plan is shown at full width and at that rank
  --block-size N    tokens per KV block (default 16)
  --kv-dtype T      bf16 | f32 (default bf16)
  --chunk N         prefill chunk (tokens per step) the sequences grow by (default 2048)
  --json            print {"plans": [...]} for scripts`;

export function runInspect(argv: string[]): string {
  const { values } = parseArgs({
    args: argv,
    options: {
      layers: { type: 'string' },
      'kv-heads': { type: 'string' },
      'head-dim': { type: 'string' },
      context: { type: 'string' },
      budget: { type: 'string' },
      plan: { type: 'string' },
      window: { type: 'string' },
      'block-size': { type: 'string' },
      'kv-dtype': { type: 'string' },
      chunk: { type: 'string' },
      model: { type: 'string' },
      'kv-rank': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return INSPECT_USAGE;
  const model = values.model === undefined ? undefined : checkpoint(values.model);
  for (const f of ['layers', 'kv-heads', 'head-dim'] as const) {
    if (model && values[f] !== undefined) throw new UsageError(`--${f} cannot be given with --model (config.json sets it)`);
  }
  const layers = model?.layers ?? intOption(values.layers, 'layers', 24);
  const numKvHeads = model?.numKvHeads ?? intOption(values['kv-heads'], 'kv-heads', 8);
  const headDim = model?.headDim ?? intOption(values['head-dim'], 'head-dim', 128);
  const context = intOption(values.context, 'context', 32768);
  const window = intOption(values.window, 'window', model?.window ?? 1024);
  const rank = values['kv-rank'] === undefined ? undefined : kvRankOption(values['kv-rank'], headDim);
  const blockSize = intOption(values['block-size'], 'block-size', 16);
  const chunk = intOption(values.chunk, 'chunk', 2048);
  const dtype = values['kv-dtype'] ?? 'bf16';
  if (dtype !== 'bf16' && dtype !== 'f32') throw new UsageError(`--kv-dtype must be bf16 or f32, got '${dtype}'`);
  const budgetBytes = parseBytes(values.budget ?? '40GiB');
  const specs = values.plan === undefined ? (model ? ['standard', 'checkpoint'] : [...PRESET_NAMES]) : splitPlans(values.plan);

  const plans = specs.flatMap((spec): LayerPlan[] => {
    let plan: LayerPlan;
    if (spec === 'checkpoint') {
      if (!model) throw new UsageError("plan 'checkpoint' needs --model");
      plan = model.plan;
    } else {
      plan = resolvePlan(spec, layers, { window, headDim });
    }
    if (rank) plan = withKvRank(plan, rank);
    if (!plan.layers.some((l) => l.kvRank !== undefined)) return [plan];
    return [withoutKvRank(plan), { ...plan, name: `${plan.name} ${rankLabel(plan)}` }];
  });
  const reports: KvReport[] = plans.map((plan) =>
    kvReport(plan, { numKvHeads, headDim, blockSize, dtypeBytes: dtype === 'f32' ? 4 : 2, context, budgetBytes, chunk }),
  );
  if (values.json) return JSON.stringify({ plans: reports.map(jsonPlan) }, null, 2);
  return textReport(reports, { layers, numKvHeads, headDim, context, budgetBytes, dtype, chunk, blockSize });
}

interface Checkpoint {
  readonly layers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly window?: number;
  /** The checkpoint's plan (with its eigen_attention ranks), named 'checkpoint'. */
  readonly plan: LayerPlan;
}

/** What a model directory's config.json says (no weights are read). */
function checkpoint(dir: string): Checkpoint {
  const file = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelLoadError({ file }, code === 'ENOENT' ? 'is missing' : `cannot be read as JSON (${(e as Error).message})`);
  }
  const spec = mapHfConfig(json, file);
  const sliding = spec.plan.layers.find((l) => l.attention.kind === 'sliding')?.attention;
  return {
    layers: spec.config.numLayers,
    numKvHeads: spec.config.numKvHeads,
    headDim: spec.config.headDim,
    ...(sliding?.kind === 'sliding' ? { window: sliding.window } : {}),
    plan: spec.plan,
  };
}

/** 'k32v48' when every layer has that rank, else 'low-rank' (per-layer ranks). */
function rankLabel(plan: LayerPlan): string {
  const texts = new Set(plan.layers.map((l) => (l.kvRank ? `k${l.kvRank.k}v${l.kvRank.v}` : 'full')));
  return texts.size === 1 && !texts.has('full') ? [...texts][0] : 'low-rank';
}

/** Plans are comma-separated; a notation (which may itself hold commas) is separated by ';'. */
function splitPlans(text: string): string[] {
  const parts = text.includes(';') ? text.split(';') : text.split(',');
  return parts.map((s) => s.trim()).filter((s) => s.length > 0);
}

function jsonPlan(r: KvReport) {
  return {
    name: r.name,
    kvBytesPerToken: r.kvBytesPerToken,
    kvBytesAtContext: r.kvBytesAtContext,
    maxConcurrentSequences: r.maxConcurrentSequences,
    allocatorReached: r.allocatorReached,
    pageBytesPerToken: r.pageBytesPerToken,
    pagesPerSequence: r.pagesPerSequence,
    pageBytes: r.pageBytes,
    totalPages: r.totalPages,
    cacheClasses: r.cacheClasses,
  };
}

function textReport(
  reports: KvReport[],
  o: { layers: number; numKvHeads: number; headDim: number; context: number; budgetBytes: number; dtype: string; chunk: number; blockSize: number },
): string {
  const base = reports.find((r) => r.name === 'standard') ?? reports[0];
  // Owners of different widths (low-rank) can leave part of their pages empty: shown then.
  const partEmpty = reports.some((r) => r.pageBytesPerToken !== r.kvBytesPerToken);
  const rows = reports.map((r) => [
    r.name,
    String(r.cacheClasses.reduce((a, c) => a + c.owners.length, 0)),
    String(r.cacheClasses.length),
    formatBytes(r.kvBytesPerToken),
    formatBytes(r.kvBytesAtContext),
    `${((100 * r.kvBytesAtContext) / base.kvBytesAtContext).toFixed(1)}%`,
    String(r.maxConcurrentSequences),
    String(r.allocatorReached),
    ...(partEmpty ? [`${((100 * r.kvBytesPerToken) / r.pageBytesPerToken).toFixed(1)}%`] : []),
  ]);
  const head = `KV cache: ${o.layers} layers, ${o.numKvHeads} KV heads × ${o.headDim}, ${o.dtype}, blocks of ${o.blockSize} tokens; ` +
    `context ${o.context}, budget ${formatBytes(o.budgetBytes)}, growth in chunks of ${o.chunk}`;
  const table = formatTable(
    ['plan', 'caches', 'classes', 'bytes/token', `at ${o.context}`, `vs ${base.name}`, 'max seqs (model)', 'max seqs (allocator)', ...(partEmpty ? ['page fill'] : [])],
    rows,
  );
  const note = partEmpty
    ? '\n\npage fill: the share of its pages a plan fills with K/V (narrow low-rank owners share pages; what is left empty is counted in "at" and max seqs)'
    : '';
  return `${head}\n\n${table}${note}`;
}
