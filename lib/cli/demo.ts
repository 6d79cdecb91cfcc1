/**
 * `mixattn demo`: the model shipped with the package (models/mixattn-tiny) continuing a few
 * fixed English prompts, then what that cost: prefill and decode tokens/s, and the KV memory
 * its plan held (read from the engine's block manager while each sequence was live) beside
 * what `standard` and the other presets would hold for the same tokens. Those are the memory
 * model's figures only: weights trained under one plan are meaningless under another, so only
 * the model's own plan is run. `--random` keeps the random-weights comparison, which really
 * runs every plan (demo-random.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type GenerateChunk, type Model } from '../api/index.js';
import { DEFAULT_PREFILL_CHUNK } from '../api/model.js';
import { progressBar } from '../hf/index.js';
import { formatBytes, kvBytesAtContext } from '../kv/index.js';
import { DEFAULT_MODEL_NAME, requireDefaultModel } from '../model/default-model.js';
import { formatPlan } from '../plan/notation.js';
import { validateSamplingParams, type SamplingParams } from '../sampling/index.js';
import { configMaxPositions } from '../server/options.js';
import { UsageError } from './args.js';
import { comparedPlans, generationSteps, peakPages, presetNameOf, type PlanKv } from './demo-kv.js';
import { RANDOM_DEMO_USAGE, runRandomDemo } from './demo-random.js';
import { MODEL_FLAGS, SAMPLING_FLAGS, asFlagError, loadOptionsFromFlags, parseFlags, processIo, samplingFromFlags, type CliIo } from './generate.js';
import { formatTable } from './table.js';

/** Openings in the register of the training text (Brown corpus fiction and news, mixed web sentences). */
export const DEMO_PROMPTS: readonly string[] = [
  'The old man walked slowly down the road, and',
  'In the morning, the members of the committee',
  'She opened the letter and read it twice. Then she',
];

/** Sampling that reads well from the shipped model; the fixed seed (5: its first continuation stays off the retrieval task it was also trained on) makes the demo repeatable. */
export const DEMO_SAMPLING = { temperature: 0.8, topP: 0.95, repetitionPenalty: 1.1, seed: 5, maxTokens: 60 } as const satisfies SamplingParams;

export const DEMO_USAGE = `mixattn demo [options]
  The built-in model (models/mixattn-tiny, plan ma) continues three fixed prompts; then tokens/s
  and the KV memory its plan held, beside what standard and the other plans would hold.
  --prompt TEXT            a prompt of your own instead (repeatable)
  --json                   one JSON object at the end instead of the text and tables
  --model DIR              another model directory (default: the built-in model)
  --backend cpu|cuda  --threads N  --kv-budget BYTES   as in mixattn generate
  sampling flags as in mixattn generate; here the defaults are --temperature ${DEMO_SAMPLING.temperature}
  --top-p ${DEMO_SAMPLING.topP} --repetition-penalty ${DEMO_SAMPLING.repetitionPenalty} --seed ${DEMO_SAMPLING.seed} --max-tokens ${DEMO_SAMPLING.maxTokens}

${RANDOM_DEMO_USAGE}`;

export interface DemoPromptResult {
  readonly prompt: string;
  readonly text: string;
  readonly tokenIds: number[];
  readonly finishReason: string;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  readonly prefillTokensPerSecond: number;
  readonly decodeTokensPerSecond: number;
  /** Most KV pool bytes the sequence held, read from the block manager (null: nothing to read, one token or none). */
  readonly kvBytes: number | null;
  /** The same from the memory model, for the same growth. */
  readonly kvBytesModel: number;
  /** What `standard` would hold for the same tokens (memory model). */
  readonly standardKvBytes: number;
}

export interface DemoPlanResult {
  readonly name: string;
  readonly run: boolean;
  readonly layout: string;
  readonly caches: number;
  /** Memory model: bytes for the demo's longest sequence. */
  readonly kvBytes: number;
  /** Memory model: bytes for one sequence decoded to `context` tokens. */
  readonly kvBytesAtContext: number;
}

export async function runDemo(argv: string[], io: CliIo = processIo): Promise<void> {
  if (argv.includes('--random')) {
    return runRandomDemo(
      argv.filter((a) => a !== '--random'),
      (line) => io.stdout(`${line}\n`),
    );
  }
  const options = {
    ...MODEL_FLAGS,
    ...SAMPLING_FLAGS,
    prompt: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  const { values } = parseFlags({ args: argv, options, strict: true }, 'demo');
  if (values.help) return io.stdout(`${DEMO_USAGE}\n`);
  if (values.plan !== undefined) {
    throw new UsageError('demo: --plan needs --random (a trained model means something only under the plan it was trained with)');
  }
  const sampling: SamplingParams = { ...DEMO_SAMPLING, ...samplingFromFlags(values) };
  try {
    validateSamplingParams(sampling);
  } catch (e) {
    throw asFlagError(e);
  }
  const load = loadOptionsFromFlags(values);
  const prompts = values.prompt ?? DEMO_PROMPTS;
  if (prompts.some((p) => p.length === 0)) throw new UsageError('demo: --prompt must not be empty');
  const dir = values.model ?? requireDefaultModel('demo');
  const label = values.model ?? `the built-in ${DEFAULT_MODEL_NAME}`;
  const json = values.json === true;

  io.stderr(`loading ${dir}\n`);
  // No prefix cache: each sequence's blocks go straight back to the free list, so the pages in
  // use while it runs are its own.
  await using model = await loadModel(dir, { ...load, prefixCache: false, prefillChunk: DEFAULT_PREFILL_CHUNK, onProgress: progressBar({ label: 'loading' }) });
  if (!model.tokenizer) throw new UsageError(`demo: ${dir} has no tokenizer (tokenizer.json); try mixattn generate --prompt-ids`);
  const ownName = presetNameOf(model.plan) ?? 'checkpoint';
  const layout = model.engine.layout;
  const plans = comparedPlans(model.plan, ownName, {
    numKvHeads: layout.numKvHeads,
    headDim: model.config.headDim,
    blockSize: layout.blockSize,
    dtypeBytes: layout.dtypeBytes,
  });
  const standard = plans.find((p) => p.name === 'standard')!;
  const backend = load.backend ?? 'cpu';
  const kvDtype = layout.dtypeBytes === 4 ? 'f32' : 'bf16';
  if (!json) {
    io.stdout(`${header(model, label, ownName, backend, kvDtype)}\n`);
    const trained = trainingLine(dir);
    if (trained) io.stdout(`${trained}\n`);
    io.stdout(`${samplingLine(sampling)}\n`);
  }

  const results: DemoPromptResult[] = [];
  for (const [i, prompt] of prompts.entries()) {
    io.stderr(`generating ${i + 1}/${prompts.length}\n`);
    if (!json) io.stdout(`\n[${i + 1}] ${prompt}`);
    const r = await generateOne(model, prompt, sampling, json ? undefined : io.stdout);
    if (!json) io.stdout(r.text.endsWith('\n') ? '' : '\n');
    const steps = generationSteps(r.promptTokens, r.generatedTokens, DEFAULT_PREFILL_CHUNK);
    results.push({
      ...r,
      kvBytesModel: peakPages(layout, steps) * layout.pageBytes,
      standardKvBytes: peakPages(standard.layout, steps) * standard.layout.pageBytes,
    });
  }

  const longest = results.reduce((a, b) => (b.promptTokens + b.generatedTokens > a.promptTokens + a.generatedTokens ? b : a));
  const longestSteps = generationSteps(longest.promptTokens, longest.generatedTokens, DEFAULT_PREFILL_CHUNK);
  const context = (await configMaxPositions(dir)) ?? 4096;
  const planResults = plans.map((p): DemoPlanResult => ({
    name: p.name,
    run: p.run,
    layout: formatPlan(p.plan),
    caches: p.caches,
    kvBytes: peakPages(p.layout, longestSteps) * p.layout.pageBytes,
    kvBytesAtContext: kvBytesAtContext(p.layout, context, 1),
  }));

  if (json) {
    const out = { model: dir, plan: ownName, layout: formatPlan(model.plan), backend, kvDtype, sampling, context, prompts: results, plans: planResults };
    io.stdout(`${JSON.stringify(out)}\n`);
    return;
  }
  io.stdout(`\n${promptTable(results, ownName)}\n`);
  io.stdout(`\n${planTable(planResults, plans, longest, context, ownName)}\n`);
}

async function generateOne(
  model: Model,
  prompt: string,
  sampling: SamplingParams,
  stream: ((text: string) => void) | undefined,
): Promise<Omit<DemoPromptResult, 'kvBytesModel' | 'standardKvBytes'>> {
  const blocks = model.engine.blocks;
  let text = '';
  const tokenIds: number[] = [];
  let peakPagesSeen = 0;
  let last: GenerateChunk | undefined;
  for await (const c of model.generate(prompt, sampling)) {
    // A chunk before the last arrives while the next step runs: the pages in use then are the
    // sequence's, that step's tokens included. The last chunk comes after its blocks went back.
    if (!c.finishReason) peakPagesSeen = Math.max(peakPagesSeen, blocks.usedPages);
    text += c.text;
    tokenIds.push(...c.tokenIds);
    stream?.(c.text);
    if (c.finishReason) last = c;
  }
  const { usage, timing } = last!;
  return {
    prompt,
    text,
    tokenIds,
    finishReason: last!.finishReason!,
    promptTokens: usage!.promptTokens,
    generatedTokens: usage!.completionTokens,
    prefillTokensPerSecond: timing!.prefillMs > 0 ? (usage!.promptTokens * 1000) / timing!.prefillMs : 0,
    decodeTokensPerSecond: timing!.tokensPerSecond,
    kvBytes: peakPagesSeen > 0 ? peakPagesSeen * model.engine.pageBytes : null,
  };
}

function header(model: Model, label: string, planName: string, backend: string, kvDtype: string): string {
  const c = model.config;
  return (
    `mixattn demo: ${label} (${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads / ${c.numKvHeads} KV heads × ${c.headDim}, ` +
    `vocab ${c.vocabSize}), plan ${planName} (${formatPlan(model.plan)}), ${backend.toUpperCase()} backend, ${kvDtype} KV`
  );
}

/** One line from train-log.json, when the model directory has one. */
function trainingLine(dir: string): string | undefined {
  try {
    const log = JSON.parse(readFileSync(join(dir, 'train-log.json'), 'utf8')) as Record<string, unknown>;
    const num = (k: string) => (typeof log[k] === 'number' ? (log[k] as number) : undefined);
    const parts = [
      num('params') !== undefined ? `${(num('params')! / 1e6).toFixed(1)}M parameters` : undefined,
      num('tokens_seen') !== undefined ? `trained on ${(num('tokens_seen')! / 1e6).toFixed(1)}M tokens` : undefined,
      num('final_heldout_loss') !== undefined ? `held-out loss ${num('final_heldout_loss')!.toFixed(2)}` : undefined,
    ].filter((p) => p !== undefined);
    return parts.length > 0 ? parts.join(', ') : undefined;
  } catch {
    return undefined;
  }
}

function samplingLine(s: SamplingParams): string {
  const how = s.temperature === 0 ? 'greedy' : `temperature ${s.temperature}, top-p ${s.topP ?? 1}`;
  const extra = [s.topK ? `top-k ${s.topK}` : '', s.repetitionPenalty && s.repetitionPenalty !== 1 ? `repetition penalty ${s.repetitionPenalty}` : '']
    .filter((x) => x)
    .join(', ');
  return `sampling: ${how}${extra ? `, ${extra}` : ''}, seed ${s.seed ?? 'random'}; up to ${s.maxTokens} tokens per prompt`;
}

const rate = (x: number) => (x > 0 ? x.toFixed(0) : 'n/a');

function promptTable(results: readonly DemoPromptResult[], planName: string): string {
  const rows = results.map((r, i) => [
    String(i + 1),
    String(r.promptTokens),
    String(r.generatedTokens),
    rate(r.prefillTokensPerSecond),
    rate(r.decodeTokensPerSecond),
    r.kvBytes === null ? 'n/a' : formatBytes(r.kvBytes),
    formatBytes(r.standardKvBytes),
  ]);
  return formatTable(['prompt', 'prompt tokens', 'generated tokens', 'prefill tok/s', 'decode tok/s', `KV held (${planName})`, 'standard, same tokens'], rows);
}

function planTable(results: readonly DemoPlanResult[], plans: readonly PlanKv[], longest: DemoPromptResult, context: number, planName: string): string {
  const tokens = longest.promptTokens + longest.generatedTokens;
  const standardAtContext = results.find((r) => r.name === 'standard')!.kvBytesAtContext;
  const rows = results.map((r) => [
    r.run ? `${r.name} (run)` : r.name,
    String(r.caches),
    formatBytes(r.kvBytes),
    formatBytes(r.kvBytesAtContext),
    `${((100 * r.kvBytesAtContext) / standardAtContext).toFixed(1)}%`,
    r.layout,
  ]);
  const dtype = plans[0].layout.dtypeBytes === 4 ? 'f32' : 'bf16';
  const note = [
    `KV memory of one sequence: the longest above (${tokens} tokens) and one decoded to the model's context (${context} tokens).`,
    `Only ${planName} ran: the model was trained under it; under another plan its weights would make noise.`,
    `Every row is the memory model's figure (lib/kv) for the same tokens in the same pages (${dtype}, ${plans[0].layout.blockSize} tokens a block);`,
    `for ${planName} it is what the block manager held above.`,
  ].join('\n');
  return `${note}\n\n${formatTable(['plan', 'caches', `${tokens} tokens`, `${context} tokens`, `vs standard at ${context}`, 'layout'], rows)}`;
}
