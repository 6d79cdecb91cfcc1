/**
 * `mixattn generate`: one generation from a model directory (the built-in model unless
 * --model), streamed to stdout as it comes (or, with --json, one JSON object at the end).
 * The model and sampling flags are shared with `mixattn chat` and `mixattn demo`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadModel, type GenerateInput, type LoadModelOptions, type Model } from '../api/index.js';
import { SamplingParamError, validateSamplingParams, type SamplingParams } from '../sampling/index.js';
import { progressBar } from '../hf/index.js';
import { parseBytes } from '../kv/bytes.js';
import { DEFAULT_MODEL_NAME, requireDefaultModel } from '../model/default-model.js';
import { intOption, UsageError } from './args.js';

export const MODEL_FLAGS_USAGE = `  --model DIR              Hugging Face model directory (default: the built-in models/${DEFAULT_MODEL_NAME})
  --plan P                 run under another layer plan: a preset or the notation
  --backend cpu|cuda       compute backend (default cpu)
  --threads N              CPU threads (default: all cores)
  --kv-budget BYTES        KV cache memory, e.g. 1GiB (default 256MiB)`;

export const SAMPLING_FLAGS_USAGE = `  --max-tokens N           most tokens to generate (default: the model's max_new_tokens, else 256)
  --temperature T          0 = greedy (default: generation_config.json, greedy unless do_sample)
  --greedy                 same as --temperature 0
  --top-k K  --top-p P  --min-p M
  --repetition-penalty R  --presence-penalty X  --frequency-penalty X
  --seed S                 reproducible sampling
  --stop S                 stop string (repeatable; \\n for a newline)
  --ignore-eos             keep going past the model's end-of-sequence tokens`;

export const GENERATE_USAGE = `mixattn generate [--model DIR] (--prompt TEXT | --prompt-ids 1,2,3) [options]
  --prompt TEXT            the prompt (tokenized with the model's special tokens)
  --prompt-ids IDS         the prompt as comma-separated token ids (models without a tokenizer)
  --json                   print one JSON object at the end: {tokenIds, text, finishReason, usage, timing}
${MODEL_FLAGS_USAGE}
${SAMPLING_FLAGS_USAGE}`;

export const MODEL_FLAGS = {
  model: { type: 'string' },
  plan: { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'kv-budget': { type: 'string' },
} as const;

export const SAMPLING_FLAGS = {
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  greedy: { type: 'boolean' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  'presence-penalty': { type: 'string' },
  'frequency-penalty': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  'ignore-eos': { type: 'boolean' },
} as const;

type Flags = Record<string, string | boolean | string[] | undefined>;

/** Where a command writes; tests pass their own. `signal` aborts the generation (default: Ctrl-C). */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly signal?: AbortSignal;
}

export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
};

/**
 * node:util parseArgs with its errors as one-line usage errors. A negative number after a
 * string flag (--presence-penalty -0.5) is taken as its value, which parseArgs refuses.
 */
export function parseFlags<T extends ParseArgsConfig>(config: T, command: string): ReturnType<typeof parseArgs<T>> {
  const opts = (config.options ?? {}) as Record<string, { type: string }>;
  const args = [...(config.args ?? [])];
  for (let i = 0; i + 1 < args.length; i++) {
    const name = args[i].startsWith('--') ? args[i].slice(2) : '';
    if (opts[name]?.type === 'string' && /^-[\d.]/.test(args[i + 1])) args.splice(i, 2, `${args[i]}=${args[i + 1]}`);
  }
  try {
    return parseArgs({ ...config, args }) as ReturnType<typeof parseArgs<T>>;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0].split('. ')[0];
    throw new UsageError(`${command}: ${msg} (see mixattn ${command} --help)`);
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function numFlag(v: unknown, name: string): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${s}'`);
  return n;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** A sampling error ("temperature must be ...") as the flag that caused it ("--temperature must be ..."). */
export function asFlagError(e: unknown): unknown {
  if (!(e instanceof SamplingParamError)) return e;
  const flag = `--${kebab(e.param.replace(/\[\d+\]$/, ''))}`;
  return new UsageError(e.message.replace(/^[\w[\]]+/, flag));
}

export function samplingFromFlags(v: Flags): SamplingParams {
  if (v.greedy && v.temperature !== undefined) throw new UsageError('--greedy and --temperature cannot be used together');
  const p: Record<string, unknown> = {
    maxTokens: numFlag(v['max-tokens'], 'max-tokens'),
    temperature: v.greedy ? 0 : numFlag(v.temperature, 'temperature'),
    topK: numFlag(v['top-k'], 'top-k'),
    topP: numFlag(v['top-p'], 'top-p'),
    minP: numFlag(v['min-p'], 'min-p'),
    repetitionPenalty: numFlag(v['repetition-penalty'], 'repetition-penalty'),
    presencePenalty: numFlag(v['presence-penalty'], 'presence-penalty'),
    frequencyPenalty: numFlag(v['frequency-penalty'], 'frequency-penalty'),
    seed: numFlag(v.seed, 'seed'),
    stop: Array.isArray(v.stop) ? v.stop.map((s) => s.replace(/\\n/g, '\n')) : undefined,
    ignoreEos: v['ignore-eos'] === true ? true : undefined,
  };
  return Object.fromEntries(Object.entries(p).filter(([, x]) => x !== undefined)) as SamplingParams;
}

export function loadOptionsFromFlags(v: Flags): LoadModelOptions {
  const backend = str(v.backend);
  if (backend !== undefined && backend !== 'cpu' && backend !== 'cuda') throw new UsageError(`--backend must be cpu or cuda, got '${backend}'`);
  const budget = str(v['kv-budget']);
  return {
    ...(str(v.plan) !== undefined ? { plan: str(v.plan) } : {}),
    ...(backend ? { backend } : {}),
    threads: intOption(str(v.threads), 'threads', 0, 0),
    ...(budget !== undefined ? { kvBudgetBytes: parseBytes(budget) } : {}),
  };
}

/** Loads --model, else the built-in model, with a progress bar on stderr (drawn only on a terminal). */
export async function openModel(v: Flags, command: string): Promise<Model> {
  const dir = str(v.model) ?? requireDefaultModel(command);
  const opts = loadOptionsFromFlags(v);
  return loadModel(dir, { ...opts, onProgress: progressBar({ label: 'loading' }) });
}

function promptFromFlags(v: Flags): GenerateInput {
  const text = str(v.prompt);
  const ids = str(v['prompt-ids']);
  if ((text === undefined) === (ids === undefined)) throw new UsageError('generate: give exactly one of --prompt and --prompt-ids');
  if (text !== undefined) return text;
  const parts = ids!.split(',').map((s) => s.trim());
  if (!parts.every((s) => /^\d+$/.test(s))) throw new UsageError(`--prompt-ids must be comma-separated token ids, got '${ids}'`);
  return { promptIds: parts.map(Number) };
}

export async function runGenerate(argv: string[], io: CliIo = processIo): Promise<void> {
  const options = {
    ...MODEL_FLAGS,
    ...SAMPLING_FLAGS,
    prompt: { type: 'string' },
    'prompt-ids': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  const { values } = parseFlags({ args: argv, options, strict: true }, 'generate');
  if (values.help) return io.stdout(`${GENERATE_USAGE}\n`);
  const input = promptFromFlags(values);
  const sampling = samplingFromFlags(values);
  try {
    validateSamplingParams(sampling); // flag errors before looking for the model and the (slow) load
  } catch (e) {
    throw asFlagError(e);
  }
  loadOptionsFromFlags(values);
  await using model = await openModel(values, 'generate');
  const ac = new AbortController();
  let stream;
  try {
    stream = model.generate(input, { ...sampling, signal: ac.signal });
  } catch (e) {
    throw asFlagError(e);
  }
  const onSigint = () => ac.abort(); // Ctrl-C ends the generation; what came so far is kept
  io.signal?.addEventListener('abort', onSigint);
  if (!io.signal) process.on('SIGINT', onSigint);
  const json = values.json === true;
  const tokenIds: number[] = [];
  let text = '';
  try {
    for await (const c of stream) {
      tokenIds.push(...c.tokenIds);
      text += c.text;
      if (!json) io.stdout(model.tokenizer ? c.text : c.tokenIds.map((t) => `${t} `).join(''));
      if (!c.finishReason) continue;
      const result = { tokenIds, text, finishReason: c.finishReason, ...(c.stopReason !== undefined ? { stopReason: c.stopReason } : {}), usage: c.usage, timing: c.timing };
      if (json) io.stdout(`${JSON.stringify(result)}\n`);
      else {
        const t = c.timing!;
        if (!text.endsWith('\n')) io.stdout('\n');
        io.stderr(`[${c.usage!.completionTokens} tokens, ${c.finishReason}; prefill ${t.prefillMs.toFixed(0)} ms, ${t.tokensPerSecond.toFixed(1)} tokens/s]\n`);
      }
    }
  } finally {
    io.signal?.removeEventListener('abort', onSigint);
    if (!io.signal) process.off('SIGINT', onSigint);
  }
}
