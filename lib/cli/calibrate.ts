/**
 * `mixattn calibrate`: turns a model directory into a low-rank K/V (Eigen Attention) one,
 * calibrated on a plain-text file (lib/eigen, docs/eigen.md). Progress goes to stderr; the
 * result is the output directory (with calibration.json), plus a one-line summary on stdout.
 */
import { calibrate, type CalibrateBackend } from '../eigen/calibrate.js';
import { progressBar } from '../hf/index.js';
import { intOption, UsageError } from './args.js';
import { parseFlags, processIo, type CliIo } from './generate.js';

export const CALIBRATE_USAGE = `mixattn calibrate --model DIR --data FILE --out DIR2 [options]   (Eigen Attention: low-rank K/V)
  --model DIR              Hugging Face model directory (required)
  --data FILE              plain-text calibration data, tokenized with the model's tokenizer (required)
  --out DIR2               where the low-rank model goes (required; must not exist or be empty)
  --samples N              calibration sequences (default 32)
  --seq-len L              tokens per sequence (default 512; at most the model's context)
  --error-budget E         largest relative attention-output error per layer, in (0, 1) (default 0.025)
  --plan P                 calibrate and fold under this layer plan (a preset or the notation)
  --backend cpu|cuda|auto  compute backend (default auto: cuda when a GPU is there)
  --threads N              CPU threads (default: all cores)`;

export async function runCalibrate(argv: string[], io: CliIo = processIo): Promise<void> {
  const options = {
    model: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    samples: { type: 'string' },
    'seq-len': { type: 'string' },
    'error-budget': { type: 'string' },
    plan: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  const { values: v } = parseFlags({ args: argv, options, strict: true }, 'calibrate');
  if (v.help) return io.stdout(`${CALIBRATE_USAGE}\n`);
  for (const f of ['model', 'data', 'out'] as const) {
    if (v[f] === undefined) throw new UsageError(`calibrate: --${f} is required (see mixattn calibrate --help)`);
  }
  const budgetText = v['error-budget'];
  const budget = budgetText === undefined ? 0.025 : Number(budgetText);
  if (budgetText !== undefined && (budgetText.trim() === '' || !Number.isFinite(budget) || budget <= 0 || budget >= 1)) {
    throw new UsageError(`--error-budget must be a number in (0, 1), got '${budgetText}'`);
  }
  const backend = v.backend ?? 'auto';
  if (!['cpu', 'cuda', 'auto'].includes(backend)) throw new UsageError(`--backend must be cpu, cuda or auto, got '${backend}'`);
  const report = await calibrate({
    model: v.model!,
    data: v.data!,
    out: v.out!,
    samples: intOption(v.samples, 'samples', 32),
    seqLen: intOption(v['seq-len'], 'seq-len', 512, 2),
    errorBudget: budget,
    plan: v.plan,
    backend: backend as CalibrateBackend,
    threads: intOption(v.threads, 'threads', 0, 0),
    log: (line) => io.stderr(`${line}\n`),
    onLoadProgress: progressBar({ label: 'loading' }),
  });
  const k = report.layers.map((l) => l.k_rank).join(',');
  const vr = report.layers.map((l) => l.v_rank).join(',');
  io.stdout(`${v.out}: k ranks ${k}; v ranks ${vr}; K/V cache at ${(report.kv_fraction * 100).toFixed(1)}% of full width (${report.seconds.total.toFixed(1)} s)\n`);
}
