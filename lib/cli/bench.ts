/**
 * `mixattn bench`: end-to-end greedy generation with a random 1B-class Llama-shaped model
 * (24 layers, hidden 2048, 16 heads / 8 KV heads × 128, MLP 5632, vocab 32000, bf16 weights;
 * nothing downloaded). For each batch size: prefill a prompt of --prompt random tokens per
 * sequence, then --new greedy decode steps with the argmax on the backend (only token ids
 * cross to the host). Reports decode tokens/s, and the batch-1 decode step time against the
 * weight-read floor (weight bytes / the device copy bandwidth given by --copy-bw, measured in
 * the same run by bench/e2e_hf.py). With --hf FILE (bench/e2e_hf.py's JSON) the table holds
 * HF transformers `generate` on the same config beside ours. Writes e2e-<date>.{json,md} to --out.
 *
 *   mixattn bench --backend cuda --out DIR [--copy-bw 3.0e12] [--hf hf.json]
 *   mixattn bench --backend cpu --size small --prompt 256 --batches 1,4   # a smoke run
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { execSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { llamaConfig, type ModelConfig } from '../model/config.js';
import { fastWeights } from '../model/fast-weights.js';
import { Prng, hashSeed } from '../model/prng.js';
import { weightSpecs } from '../model/weights.js';
import { resolvePlan } from '../plan/notation.js';
import { withKvRank } from '../plan/ranks.js';
import { kvLayout } from '../kv/layout.js';
import { Engine, type BackendName, type WeightTensor } from '../engine/engine.js';
import { greedyGenerate } from '../engine/greedy.js';
import { intOption, kvRankOption, listOption, UsageError } from './args.js';

export const BENCH_USAGE = `mixattn bench [options]     (end-to-end greedy decode speed, random weights)
  --backend NAME   cuda (default) or cpu
  --size NAME      1b (default: 24 layers, hidden 2048, 16/8 heads × 128, MLP 5632, vocab 32000)
                   or small (a smoke-test model)
  --batches LIST   batch sizes (default 1,16,64)
  --prompt N       prompt tokens per sequence (default 4096)
  --new N          decode steps timed per batch (default 64)
  --prefill-chunk N  prompt tokens per sequence per prefill step (default 1024)
  --plan P         layer plan: a preset or the notation (default standard; presets: window 1024)
  --kv-rank R      keep K/V at a rank (Eigen Attention): R, or k=R1,v=R2
  --copy-bw X      device copy bandwidth in bytes/s (read + written), for the weight-read floor
  --hf FILE        bench/e2e_hf.py's JSON: HF transformers on the same config, shown beside ours
  --deadline S     skip the batch sizes that would start after S seconds
  --threads N      CPU threads (cpu backend)
  --seed N         weights and prompts seed (default 1)
  --out DIR        where e2e-<date>.{json,md} go (default: print only)`;

interface BenchRun {
  batch: number;
  promptTokens: number;
  decodeSteps: number;
  prefillSeconds: number;
  prefillTokensPerS: number;
  decodeSeconds: number;
  decodeTokensPerS: number;
  stepMs: { mean: number; p50: number; min: number };
}

interface HfRun {
  batch: number;
  prompt: number;
  new_tokens: number;
  decode_tok_s: number;
  step_ms: number;
  prefill_s: number;
}

interface HfResult {
  device?: string;
  torch?: string;
  transformers?: string;
  attn_implementation?: string;
  copy_bytes_per_s?: number;
  weight_bytes?: number;
  runs: HfRun[];
  skipped?: string[];
}

function benchConfig(size: string): ModelConfig {
  if (size === '1b') {
    return llamaConfig({ vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numLayers: 24, numHeads: 16, numKvHeads: 8, headDim: 128 });
  }
  if (size === 'small') {
    return llamaConfig({ vocabSize: 2048, hiddenSize: 256, intermediateSize: 704, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 64 });
  }
  throw new UsageError(`--size must be 1b or small, got '${size}'`);
}

// ---------------------------------------------------------------------------------------

const fmt = (x: number | undefined, d = 2): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : '–');

/** The device a run used, in words (the GPU's name, memory and driver; or the CPU model × cores). */
export function deviceName(backend: BackendName): string {
  if (backend !== 'cuda') return `CPU: ${cpus()[0]?.model ?? '?'} × ${cpus().length}`;
  try {
    return execSync('nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader', { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
      .split('\n')[0];
  } catch {
    return 'cuda (nvidia-smi unavailable)';
  }
}

/** `git rev-parse --short HEAD` (+dirty), or MIXATTN_COMMIT where set (runs outside a checkout). */
export function gitCommit(): string {
  if (process.env.MIXATTN_COMMIT) return process.env.MIXATTN_COMMIT;
  try {
    const sha = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return sha + (dirty ? '+dirty' : '');
  } catch {
    return 'unknown';
  }
}

export interface BenchReport {
  bench: 'e2e';
  date: string;
  device: string;
  commit: string;
  node: string;
  backend: BackendName;
  size: string;
  model: ModelConfig & { params: number; dtype: 'bf16' };
  settings: { batches: number[]; promptTokens: number; decodeSteps: number; prefillChunk: number; seed: number; kvDtype: string; sampling: string; plan: string };
  weightBytes: number;
  /** Bytes a decode step must read from the weights: all but the embedding table (only B rows are gathered). */
  weightBytesReadPerStep: number;
  /** KV bytes one sequence's decode step reads at the prompt's length (every layer's K and V). */
  kvBytesPerSeqAtPrompt: number;
  copyBytesPerS: number | null;
  floor: null | {
    weightsMs: number;
    weightsReadMs: number;
    weightsReadPlusKvMs: number;
    batch1StepMs: number;
    ratio: number;
    target: number;
    met: boolean;
  };
  runs: BenchRun[];
  skipped: number[];
  hf: HfResult | null;
}

export function benchMarkdown(r: BenchReport): string {
  const L: string[] = [];
  const m = r.model;
  L.push(`# End-to-end decode, ${r.device}, ${r.date}, commit ${r.commit}`);
  L.push('');
  L.push(
    `Model: Llama-shaped random weights (bf16), ${m.numLayers} layers, hidden ${m.hiddenSize}, ${m.numHeads} heads / ${m.numKvHeads} KV heads × ${m.headDim}, ` +
      `MLP ${m.intermediateSize}, vocab ${m.vocabSize} (${(m.params / 1e9).toFixed(2)}B parameters, ${(r.weightBytes / 1e9).toFixed(2)} GB). ` +
      `mixattn: backend ${r.backend}, ${r.settings.kvDtype} KV (paged, blocks of 16), plan ${r.settings.plan}, greedy with the argmax on the device.`,
  );
  L.push(
    `Workload per batch size: ${r.settings.promptTokens} random prompt tokens per sequence (prefill in chunks of ${r.settings.prefillChunk} per sequence), ` +
      `then ${r.settings.decodeSteps} greedy decode steps; decode tok/s = batch × steps / decode time (host loop included).`,
  );
  L.push('');
  const hf = new Map((r.hf?.runs ?? []).map((x) => [x.batch, x]));
  L.push('| batch | mixattn decode tok/s | step ms (p50) | prefill tok/s | HF decode tok/s | HF step ms | mixattn / HF |');
  L.push('|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of r.runs) {
    const h = hf.get(x.batch);
    L.push(
      `| ${x.batch} | ${fmt(x.decodeTokensPerS, 1)} | ${fmt(x.stepMs.p50, 2)} | ${fmt(x.prefillTokensPerS, 0)} | ${fmt(h?.decode_tok_s, 1)} | ${fmt(h?.step_ms, 2)} | ` +
        `${h ? fmt(x.decodeTokensPerS / h.decode_tok_s, 2) + '×' : '–'} |`,
    );
  }
  if (r.skipped.length > 0) L.push(`\nSkipped (deadline): batch ${r.skipped.join(', ')}.`);
  L.push('');
  if (r.floor && r.copyBytesPerS) {
    const f = r.floor;
    L.push(
      `Weight-read floor: device copy bandwidth ${(r.copyBytesPerS / 1e12).toFixed(2)} TB/s (read + written, measured in the same run); ` +
        `all weights ${(r.weightBytes / 1e9).toFixed(3)} GB → **${fmt(f.weightsMs, 3)} ms**. Batch-1 decode step (p50): **${fmt(f.batch1StepMs, 3)} ms = ${fmt(f.ratio, 2)}× the floor** ` +
        `(target ≤ ${f.target}×: ${f.met ? 'met' : 'missed'}).`,
    );
    L.push(
      `Stricter floors for the same step: weights a decode step reads (all but the embedding table, ${(r.weightBytesReadPerStep / 1e9).toFixed(3)} GB) ${fmt(f.weightsReadMs, 3)} ms; ` +
        `plus the KV of a ${r.settings.promptTokens}-token context (${(r.kvBytesPerSeqAtPrompt / 1e6).toFixed(0)} MB) ${fmt(f.weightsReadPlusKvMs, 3)} ms.`,
    );
  } else {
    L.push('Weight-read floor: no copy bandwidth given (--copy-bw), so no floor.');
  }
  if (r.hf) {
    L.push('');
    L.push(
      `HF: transformers ${r.hf.transformers ?? '?'}, torch ${r.hf.torch ?? '?'}, LlamaForCausalLM (same config, bf16, random init, ${r.hf.attn_implementation ?? 'sdpa'} attention), ` +
        '`generate` greedy with EOS off; decode tok/s = batch × (new − 1) / (t(generate new tokens) − t(generate 1 token)), same prompt length and batch sizes, same GPU call.',
    );
  }
  return L.join('\n') + '\n';
}

export async function runBench(argv: string[], log: (line: string) => void): Promise<BenchReport | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string' },
      size: { type: 'string' },
      batches: { type: 'string' },
      prompt: { type: 'string' },
      new: { type: 'string' },
      'prefill-chunk': { type: 'string' },
      plan: { type: 'string' },
      'kv-rank': { type: 'string' },
      'copy-bw': { type: 'string' },
      hf: { type: 'string' },
      deadline: { type: 'string' },
      threads: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    log(BENCH_USAGE);
    return undefined;
  }
  const t0 = performance.now();
  const backend = (values.backend ?? 'cuda') as BackendName;
  if (backend !== 'cuda' && backend !== 'cpu') throw new UsageError(`--backend must be cuda or cpu, got '${values.backend}'`);
  const size = values.size ?? '1b';
  const cfg = benchConfig(size);
  const batches = listOption(values.batches, ['1', '16', '64']).map((b) => intOption(b, 'batches', 1));
  const promptTokens = intOption(values.prompt, 'prompt', 4096);
  const decodeSteps = intOption(values.new, 'new', 64);
  const prefillChunk = intOption(values['prefill-chunk'], 'prefill-chunk', 1024);
  const threads = intOption(values.threads, 'threads', 0, 0);
  const seed = intOption(values.seed, 'seed', 1, 0);
  const deadlineS = values.deadline === undefined ? Infinity : Number(values.deadline);
  let copyBytesPerS: number | null = values['copy-bw'] === undefined ? null : Number(values['copy-bw']);
  if (copyBytesPerS !== null && !(copyBytesPerS > 0)) throw new UsageError(`--copy-bw must be a positive number of bytes/s, got '${values['copy-bw']}'`);
  const hf: HfResult | null = values.hf ? (JSON.parse(readFileSync(values.hf, 'utf8')) as HfResult) : null;
  if (copyBytesPerS === null && hf?.copy_bytes_per_s) copyBytesPerS = hf.copy_bytes_per_s;
  const elapsed = () => (performance.now() - t0) / 1000;

  const resolved = resolvePlan(values.plan ?? 'standard', cfg.numLayers, { headDim: cfg.headDim });
  const plan = values['kv-rank'] === undefined ? resolved : withKvRank(resolved, kvRankOption(values['kv-rank'], cfg.headDim));
  const planText = `${values.plan ?? 'standard'}${values['kv-rank'] === undefined ? '' : ` (K/V rank ${values['kv-rank']})`}`;
  const params = weightSpecs(cfg, plan).reduce((s, w) => s + w.shape.reduce((x, y) => x * y, 1), 0);
  const kvDtype = 'bf16';
  const maxBatch = Math.max(...batches);
  const blockSize = 16;
  // Page bytes per token held in every class (what the pool is sized by; sliding classes over-counted).
  const layout = kvLayout(plan, { numKvHeads: cfg.numKvHeads, headDim: cfg.headDim, dtypeBytes: 2, blockSize });
  const bytesPerToken = layout.classes.reduce((s, c) => s + c.pagesPerBlock, 0) * layout.pageBytes / blockSize;
  const perSeqTokens = (Math.ceil((promptTokens + decodeSteps + 1) / blockSize) + 1) * blockSize;
  const kvBudgetBytes = maxBatch * perSeqTokens * bytesPerToken + 64 * blockSize * bytesPerToken;

  const date = new Date().toISOString().slice(0, 10);
  const report: BenchReport = {
    bench: 'e2e',
    date,
    device: deviceName(backend),
    commit: gitCommit(),
    node: process.version,
    backend,
    size,
    model: { ...cfg, params, dtype: 'bf16' },
    settings: { batches, promptTokens, decodeSteps, prefillChunk, seed, kvDtype, sampling: 'greedy, argmax on the device (Engine.step output: argmax)', plan: planText },
    weightBytes: 0,
    weightBytesReadPerStep: 0,
    kvBytesPerSeqAtPrompt: promptTokens * bytesPerToken,
    copyBytesPerS,
    floor: null,
    runs: [],
    skipped: [],
    hf,
  };
  const save = () => {
    if (!values.out) return;
    mkdirSync(values.out, { recursive: true });
    const base = join(values.out, `e2e-${date}${size === '1b' ? '' : `-${size}`}`);
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(`${base}.md`, benchMarkdown(report));
  };

  log(`mixattn bench: ${report.device}; backend ${backend}; model ${size} (${(params / 1e9).toFixed(3)}B params); KV budget ${(kvBudgetBytes / 2 ** 30).toFixed(2)} GiB`);
  const tb = performance.now();
  const engine = await Engine.createAsync(cfg, plan, fastWeights(cfg, plan, seed), { backend, threads, kvDtype, kvBudgetBytes, prefixCache: false, blockSize });
  try {
    report.weightBytes = engine.weightBytes;
    report.weightBytesReadPerStep = engine.weightBytes - cfg.vocabSize * cfg.hiddenSize * 2;
    log(`engine ready in ${((performance.now() - tb) / 1000).toFixed(1)} s (${(engine.weightBytes / 1e9).toFixed(3)} GB of weights)`);

    // Per-step times, from a wrapper around engine.step (greedyGenerate calls it once a step).
    const stepTimes: { ms: number; tokens: number }[] = [];
    const e = engine as unknown as { step: (...a: unknown[]) => Promise<unknown> };
    const orig = e.step.bind(engine);
    e.step = async (...a: unknown[]) => {
      const s = performance.now();
      const out = await orig(...a);
      const entries = a[0] as { tokens: ArrayLike<number> }[];
      stepTimes.push({ ms: performance.now() - s, tokens: entries.reduce((n, x) => n + x.tokens.length, 0) });
      return out;
    };

    const r = new Prng(hashSeed(seed, 'prompts'));
    const prompt = () => Array.from({ length: promptTokens }, () => Math.floor(r.uniform() * cfg.vocabSize));
    for (const batch of batches) {
      if (elapsed() > deadlineS) {
        log(`batch ${batch}: skipped, past the deadline (${elapsed().toFixed(0)} s)`);
        report.skipped.push(batch);
        continue;
      }
      // Warm-up at this batch size: kernels, cuBLASLt plans for the decode shapes.
      const warmLen = Math.min(promptTokens, 2 * prefillChunk);
      await greedyGenerate(engine, Array.from({ length: batch }, () => prompt().slice(0, warmLen)), { maxNewTokens: 4, prefillChunk });
      stepTimes.length = 0;
      const prompts = Array.from({ length: batch }, prompt);
      const g = await greedyGenerate(engine, prompts, { maxNewTokens: decodeSteps + 1, prefillChunk });
      const decode = stepTimes.filter((s) => s.tokens === batch).map((s) => s.ms);
      const sorted = [...decode].sort((x, y) => x - y);
      const run: BenchRun = {
        batch,
        promptTokens,
        decodeSteps: g.decodeTokens / batch,
        prefillSeconds: g.prefillSeconds,
        prefillTokensPerS: g.prefillTokens / g.prefillSeconds,
        decodeSeconds: g.decodeSeconds,
        decodeTokensPerS: g.decodeTokens / g.decodeSeconds,
        stepMs: {
          mean: decode.reduce((x, y) => x + y, 0) / Math.max(1, decode.length),
          p50: sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN,
          min: sorted[0] ?? NaN,
        },
      };
      report.runs.push(run);
      log(
        `batch ${batch}: prefill ${g.prefillTokens} tokens in ${g.prefillSeconds.toFixed(2)} s (${run.prefillTokensPerS.toFixed(0)} tok/s); ` +
          `decode ${g.decodeTokens} tokens in ${g.decodeSeconds.toFixed(3)} s = ${run.decodeTokensPerS.toFixed(1)} tok/s, step p50 ${run.stepMs.p50.toFixed(3)} ms (min ${run.stepMs.min.toFixed(3)})`,
      );
      save();
    }
  } finally {
    engine.dispose();
  }
  const b1 = report.runs.find((x) => x.batch === 1);
  if (copyBytesPerS && b1) {
    const ms = (bytes: number) => (bytes / copyBytesPerS!) * 1000;
    report.floor = {
      weightsMs: ms(report.weightBytes),
      weightsReadMs: ms(report.weightBytesReadPerStep),
      weightsReadPlusKvMs: ms(report.weightBytesReadPerStep + report.kvBytesPerSeqAtPrompt),
      batch1StepMs: b1.stepMs.p50,
      ratio: b1.stepMs.p50 / ms(report.weightBytes),
      target: 1.25,
      met: b1.stepMs.p50 / ms(report.weightBytes) <= 1.25,
    };
  }
  save();
  log('');
  log(benchMarkdown(report));
  return report;
}
