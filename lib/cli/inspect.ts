/**
 * `mixattn inspect`: KV cost of layer plans side by side — bytes per token, bytes at a
 * context length, and the maximum concurrent sequences in a memory budget, both as the
 * memory model predicts and as the block manager actually reaches.
 */
import { parseArgs } from 'node:util';
import { resolvePlan } from '../plan/notation.js';
import { PRESET_NAMES } from '../plan/presets.js';
import { kvReport, type KvReport } from '../kv/report.js';
import { formatBytes, parseBytes } from '../kv/bytes.js';
import { formatTable } from './table.js';
import { intOption, UsageError } from './args.js';

export const INSPECT_USAGE = `mixattn inspect [options]
  --layers N        layer count (default 24)
  --kv-heads N      KV heads (default 8)
  --head-dim N      head width (default 128)
  --context N       tokens per sequence (default 32768)
  --budget BYTES    KV memory budget, e.g. 40GiB (default 40GiB)
  --plan LIST       presets or notations, ';'-separated if notations contain commas
                    (default: every preset)
  --window N        sliding window of the presets (default 1024)
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
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return INSPECT_USAGE;
  const layers = intOption(values.layers, 'layers', 24);
  const numKvHeads = intOption(values['kv-heads'], 'kv-heads', 8);
  const headDim = intOption(values['head-dim'], 'head-dim', 128);
  const context = intOption(values.context, 'context', 32768);
  const window = intOption(values.window, 'window', 1024);
  const blockSize = intOption(values['block-size'], 'block-size', 16);
  const chunk = intOption(values.chunk, 'chunk', 2048);
  const dtype = values['kv-dtype'] ?? 'bf16';
  if (dtype !== 'bf16' && dtype !== 'f32') throw new UsageError(`--kv-dtype must be bf16 or f32, got '${dtype}'`);
  const budgetBytes = parseBytes(values.budget ?? '40GiB');
  const specs = values.plan === undefined ? [...PRESET_NAMES] : splitPlans(values.plan);

  const reports: KvReport[] = specs.map((spec) => {
    const plan = resolvePlan(spec, layers, { window });
    return kvReport(plan, { numKvHeads, headDim, blockSize, dtypeBytes: dtype === 'f32' ? 4 : 2, context, budgetBytes, chunk });
  });
  if (values.json) return JSON.stringify({ plans: reports.map(jsonPlan) }, null, 2);
  return textReport(reports, { layers, numKvHeads, headDim, context, budgetBytes, dtype, chunk, blockSize });
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
  const rows = reports.map((r) => [
    r.name,
    String(r.cacheClasses.reduce((a, c) => a + c.owners.length, 0)),
    String(r.cacheClasses.length),
    formatBytes(r.kvBytesPerToken),
    formatBytes(r.kvBytesAtContext),
    `${((100 * r.kvBytesAtContext) / base.kvBytesAtContext).toFixed(1)}%`,
    String(r.maxConcurrentSequences),
    String(r.allocatorReached),
  ]);
  const head = `KV cache: ${o.layers} layers, ${o.numKvHeads} KV heads × ${o.headDim}, ${o.dtype}, blocks of ${o.blockSize} tokens; ` +
    `context ${o.context}, budget ${formatBytes(o.budgetBytes)}, growth in chunks of ${o.chunk}`;
  const table = formatTable(
    ['plan', 'caches', 'classes', 'bytes/token', `at ${o.context}`, `vs ${base.name}`, 'max seqs (model)', 'max seqs (allocator)'],
    rows,
  );
  return `${head}\n\n${table}`;
}
