/**
 * `mixattn demo --random`: a random-weights model (no weights file at all) generating under
 * `standard` and MixAttention plans; prints throughput and the KV memory each plan held.
 * Random weights mean any plan may run them, so every plan here is really run.
 */
import { parseArgs } from 'node:util';
import { builtinConfig } from '../model/builtin.js';
import { randomWeights } from '../model/random-weights.js';
import { Prng } from '../model/prng.js';
import { resolvePlan } from '../plan/notation.js';
import { Engine } from '../engine/engine.js';
import { greedyGenerate } from '../engine/greedy.js';
import { formatBytes } from '../kv/bytes.js';
import { formatTable } from './table.js';
import { intOption, listOption } from './args.js';

export const RANDOM_DEMO_USAGE = `mixattn demo --random [options]
  --plan LIST      plans to compare (default standard,ma,ma-pairs)
  --batch N        sequences generated together (default 4)
  --prompt N       prompt tokens per sequence (default 256)
  --new N          tokens generated per sequence (default 32)
  --window N       sliding window of the MixAttention presets (default 64)
  --threads N      CPU threads (default: all cores)
  --seed N         weights and prompt seed (default 1)`;

export async function runRandomDemo(argv: string[], log: (line: string) => void): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      plan: { type: 'string' },
      batch: { type: 'string' },
      prompt: { type: 'string' },
      new: { type: 'string' },
      window: { type: 'string' },
      threads: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return log(RANDOM_DEMO_USAGE);
  const plans = listOption(values.plan, ['standard', 'ma', 'ma-pairs']);
  const batch = intOption(values.batch, 'batch', 4);
  const promptLen = intOption(values.prompt, 'prompt', 256);
  const newTokens = intOption(values.new, 'new', 32);
  const window = intOption(values.window, 'window', 64);
  const threads = intOption(values.threads, 'threads', 0, 0);
  const seed = intOption(values.seed, 'seed', 1, 0);

  const cfg = builtinConfig('demo');
  const rng = new Prng(seed);
  const prompts = Array.from({ length: batch }, () => Array.from({ length: promptLen }, () => Math.floor(rng.uniform() * cfg.vocabSize)));
  log(
    `mixattn demo --random: built-in random-weights model (${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, ` +
      `${cfg.numHeads} heads / ${cfg.numKvHeads} KV heads × ${cfg.headDim}, vocab ${cfg.vocabSize}), CPU backend, f32 KV`,
  );
  log(`${batch} sequences × ${promptLen} prompt tokens (prefill in chunks of 64), ${newTokens} greedy tokens each; sliding window ${window}\n`);

  const rows: string[][] = [];
  for (const spec of plans) {
    const plan = resolvePlan(spec, cfg.numLayers, { window });
    using engine = Engine.create(cfg, plan, randomWeights(cfg, plan, { seed, dtype: 'f32' }), { threads, kvBudgetBytes: 64 << 20 });
    const r = await greedyGenerate(engine, prompts, { maxNewTokens: newTokens, prefillChunk: 64 });
    const kvPeak = r.peakPages * engine.pageBytes;
    rows.push([
      plan.name,
      (r.prefillTokens / r.prefillSeconds).toFixed(0),
      (r.decodeTokens / Math.max(r.decodeSeconds, 1e-9)).toFixed(1),
      formatBytes(kvPeak),
      r.tokens[0].slice(0, 8).join(' '),
    ]);
    log(`  ${plan.name}: done`);
  }
  log('');
  log(formatTable(['plan', 'prefill tok/s', 'decode tok/s', 'KV peak', 'first tokens of sequence 0'], rows));
}
