#!/usr/bin/env node
/**
 * Serving benchmark: the same random-weights model under several layer plans (standard, ma,
 * ma-pairs by default), each behind the continuous-batching scheduler (lib/serve, through
 * `new Model(engine)` — the path `mixattn serve` runs, minus HTTP), fed by an open-loop
 * client: requests with long random prompts arrive at a fixed rate (Poisson, the same
 * seed, arrival times and prompts for every plan), each generating a fixed number of tokens
 * (greedy, EOS ignored). The KV budget is the same for every plan, so the memory a plan
 * saves can only show as more sequences in flight.
 *
 * Measured per (plan, rate): completed requests/s and output tokens/s over the run, time to
 * first token and inter-token latency (client side, from the scheduled arrival), sequences
 * running (per step, from scheduler.metrics()), KV pages used, preemptions and recomputed
 * tokens; beside them the memory model's predicted maximum concurrency for the budget.
 *
 *   node bench/serve.mjs --smoke                 # tiny model on the CPU, a few seconds
 *   node bench/serve.mjs --out bench/results     # the 1B-class model on CUDA (bench/serve-on-gpu.sh)
 *
 * Writes serve-<date>.json and serve-<date>.md under --out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, Model, llamaConfig, presetPlan, kvReport, formatBytes, parseBytes, fastWeights, Prng, hashSeed } from '../dist/lib/index.js';
import { weightSpecs } from '../dist/lib/model/weights.js';
import { deviceName, gitCommit } from '../dist/lib/cli/bench.js';

const t0Process = performance.now();
const { values: a } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    backend: { type: 'string' },
    plans: { type: 'string' },
    rates: { type: 'string' },
    duration: { type: 'string' },
    drain: { type: 'string' },
    prompt: { type: 'string' },
    output: { type: 'string' },
    'kv-budget': { type: 'string' },
    window: { type: 'string' },
    layers: { type: 'string' },
    hidden: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    intermediate: { type: 'string' },
    vocab: { type: 'string' },
    'max-batch-tokens': { type: 'string' },
    'prefill-chunk': { type: 'string' },
    'max-running': { type: 'string' },
    seed: { type: 'string' },
    threads: { type: 'string' },
    deadline: { type: 'string' },
    out: { type: 'string' },
    tag: { type: 'string' },
  },
});
const smoke = a.smoke === true;
const num = (v, d) => (v === undefined ? d : Number(v));
const list = (v, d) => (v === undefined ? d : v.split(',').filter(Boolean));

// Defaults: the 1B-class model and a long-prompt workload; --smoke: a tiny one on the CPU.
const S = {
  backend: a.backend ?? (smoke ? 'cpu' : 'cuda'),
  plans: list(a.plans, ['standard', 'ma', 'ma-pairs']),
  rates: list(a.rates, smoke ? ['60', '8'] : ['8', '16', '2']).map(Number),
  durationS: num(a.duration, smoke ? 2 : 12),
  drainS: num(a.drain, smoke ? 3 : 15),
  promptTokens: num(a.prompt, smoke ? 192 : 8192),
  outputTokens: num(a.output, smoke ? 16 : 128),
  kvBudget: a['kv-budget'] ?? (smoke ? '3MiB' : '16GiB'),
  window: num(a.window, smoke ? 32 : 1024),
  maxBatchTokens: num(a['max-batch-tokens'], smoke ? 256 : 2048),
  prefillChunk: num(a['prefill-chunk'], smoke ? 64 : 512),
  maxRunning: num(a['max-running'], 256),
  seed: num(a.seed, 1),
  threads: num(a.threads, 0),
  deadlineS: num(a.deadline, Infinity),
  out: a.out ?? 'bench/results',
  tag: a.tag,
};
const cfg = llamaConfig({
  vocabSize: num(a.vocab, smoke ? 512 : 32000),
  hiddenSize: num(a.hidden, smoke ? 128 : 2048),
  intermediateSize: num(a.intermediate, smoke ? 256 : 5632),
  numLayers: num(a.layers, smoke ? 12 : 24),
  numHeads: num(a.heads, smoke ? 4 : 16),
  numKvHeads: num(a['kv-heads'], smoke ? 2 : 8),
  headDim: num(a['head-dim'], smoke ? 32 : 128),
});
const kvBudgetBytes = parseBytes(S.kvBudget);
const log = (...m) => console.log(`[${((performance.now() - t0Process) / 1000).toFixed(1)}s]`, ...m);

// Weights: lib/model/fast-weights.ts (bf16, deterministic per tensor name, so every plan gets
// the same values for the tensors it has; fast enough for 1B+ parameters).
const weights = (plan) => fastWeights(cfg, plan, S.seed);

/** A uniform [0, 1) stream named `name` under the run's seed. */
function rng(name) {
  const p = new Prng(hashSeed(S.seed, name));
  return () => p.uniform();
}

// ---------------------------------------------------------------------------------------
// Workload: per rate, Poisson arrivals over durationS and one random prompt per request;
// identical for every plan.

function workload(rate, salt) {
  const r = rng(`arrivals:${rate}:${salt}`);
  const reqs = [];
  let t = 0;
  for (;;) {
    t += -Math.log(1 - r()) / rate;
    if (t >= S.durationS) break;
    const ids = new Array(S.promptTokens);
    for (let j = 0; j < ids.length; j++) ids[j] = Math.floor(r() * cfg.vocabSize);
    reqs.push({ at: t, promptIds: ids });
  }
  return reqs;
}

// ---------------------------------------------------------------------------------------

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const mean = (xs) => (xs.length === 0 ? NaN : xs.reduce((x, y) => x + y, 0) / xs.length);

/** Wraps engine.step to record every step (the scheduler calls it once per step). */
function instrument(engine) {
  const rec = { steps: [], model: undefined };
  const orig = engine.step.bind(engine);
  engine.step = async (entries) => {
    const m = rec.model?.scheduler.metrics();
    let tokens = 0;
    let prefillTokens = 0;
    for (const e of entries) {
      tokens += e.tokens.length;
      if (e.tokens.length > 1) prefillTokens += e.tokens.length;
    }
    const t0 = performance.now();
    const out = await orig(entries);
    const t1 = performance.now();
    rec.steps.push({
      t0,
      t1,
      seqs: entries.length,
      tokens,
      prefillTokens,
      running: m?.running ?? entries.length,
      waiting: m?.waiting ?? 0,
      usedPages: engine.blocks.usedPages,
    });
    return out;
  };
  return rec;
}

async function warmUp(model) {
  // Prefill through several chunks and a few decodes at a moderate batch: loads the kernels
  // and cuBLASLt plans for the common shapes before the clock starts.
  const n = Math.min(8, Math.max(2, Math.floor(model.engine.blocks.numPages / 4096)));
  const len = Math.min(S.promptTokens, 4 * S.prefillChunk);
  const r = rng('warmup');
  const jobs = [];
  for (let i = 0; i < n; i++) {
    const ids = Array.from({ length: len }, () => Math.floor(r() * cfg.vocabSize));
    jobs.push(model.complete({ promptIds: ids }, { maxTokens: 8, temperature: 0, ignoreEos: true }));
  }
  await Promise.all(jobs);
}

async function runLoad(model, rec, rate, reqs) {
  const out = reqs.map(() => ({ ttft: NaN, gaps: [], tokens: 0, finish: undefined, end: NaN, tFirst: NaN }));
  rec.steps.length = 0;
  const base = model.scheduler.metrics();
  const controllers = reqs.map(() => new AbortController());
  const t0 = performance.now() + 50;
  const lateness = [];
  const done = reqs.map(
    (q, i) =>
      new Promise((resolve) => {
        const at = t0 + q.at * 1000;
        setTimeout(async () => {
          const now = performance.now();
          lateness.push(now - at);
          const o = out[i];
          let last = NaN;
          try {
            for await (const c of model.generate({ promptIds: q.promptIds }, { maxTokens: S.outputTokens, temperature: 0, ignoreEos: true, signal: controllers[i].signal })) {
              const t = performance.now();
              if (c.tokenIds.length > 0) {
                if (o.tokens === 0) {
                  o.ttft = (t - at) / 1000;
                  o.tFirst = t;
                } else o.gaps.push(t - last);
                last = t;
                o.tokens += c.tokenIds.length;
              }
              if (c.finishReason) o.finish = c.finishReason;
            }
          } catch (e) {
            o.finish = 'error';
            o.error = String(e?.message ?? e);
          }
          o.end = performance.now();
          o.latency = (o.end - at) / 1000;
          resolve();
        }, Math.max(0, at - performance.now()));
      }),
  );
  // Past the arrivals plus the drain time, whatever is left is cancelled (counted as not completed).
  const capAt = t0 + (S.durationS + S.drainS) * 1000;
  let capped = false;
  const cap = setTimeout(() => {
    capped = true;
    for (const c of controllers) c.abort();
  }, capAt - performance.now());
  await Promise.all(done);
  clearTimeout(cap);
  await model.scheduler.idle();
  const m = model.scheduler.metrics();

  const completed = out.filter((o) => o.finish === 'length');
  const lastEnd = Math.max(...out.map((o) => o.end));
  const windowS = (Math.min(lastEnd, capped ? capAt : lastEnd) - t0) / 1000;
  const genTokens = out.reduce((s, o) => s + o.tokens, 0);
  const steps = rec.steps;
  // Time-weighted mean of running sequences over the steps, and the host time between steps.
  let busy = 0;
  let wRun = 0;
  let gaps = 0;
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    busy += s.t1 - s.t0;
    wRun += s.running * (s.t1 - s.t0);
    if (i > 0) gaps += s.t0 - steps[i - 1].t1;
  }
  const stepsWall = steps.length > 0 ? steps[steps.length - 1].t1 - steps[0].t0 : 0;
  const decodeOnly = steps.filter((s) => s.prefillTokens === 0);
  const itl = completed.flatMap((o) => o.gaps);
  const ttft = completed.map((o) => o.ttft);
  const numPages = model.engine.blocks.numPages;
  return {
    rate,
    offered: reqs.length,
    completed: completed.length,
    cancelledAtCap: out.filter((o) => o.finish === 'abort').length,
    errors: out.filter((o) => o.finish === 'error').map((o) => o.error).slice(0, 3),
    windowS,
    requestsPerS: completed.length / windowS,
    outputTokensPerS: genTokens / windowS,
    promptTokensPerS: (m.totals.promptTokens - base.totals.promptTokens) / windowS,
    ttftS: { p50: pct(ttft, 50), p90: pct(ttft, 90), p99: pct(ttft, 99), mean: mean(ttft) },
    itlMs: { p50: pct(itl, 50), p90: pct(itl, 90), p99: pct(itl, 99), mean: mean(itl) },
    latencyS: { p50: pct(completed.map((o) => o.latency), 50), p99: pct(completed.map((o) => o.latency), 99) },
    running: { max: Math.max(0, ...steps.map((s) => s.running)), mean: busy > 0 ? wRun / busy : 0 },
    waitingMax: Math.max(0, ...steps.map((s) => s.waiting)),
    kvPages: { total: numPages, peakUsed: Math.max(0, ...steps.map((s) => s.usedPages)), peakFraction: Math.max(0, ...steps.map((s) => s.usedPages)) / numPages },
    preemptions: m.totals.preemptions - base.totals.preemptions,
    recomputedTokens: m.totals.recomputedTokens - base.totals.recomputedTokens,
    steps: {
      count: steps.length,
      meanMs: busy / Math.max(1, steps.length),
      decodeOnlyMeanMs: mean(decodeOnly.map((s) => s.t1 - s.t0)),
      meanTokens: mean(steps.map((s) => s.tokens)),
      engineShareOfWall: stepsWall > 0 ? busy / stepsWall : NaN,
      hostGapMeanMs: steps.length > 1 ? gaps / (steps.length - 1) : NaN,
    },
    arrivalLatenessMs: { p50: pct(lateness, 50), max: Math.max(0, ...lateness) },
  };
}

// ---------------------------------------------------------------------------------------

const date = new Date().toISOString().slice(0, 10);
const commit = gitCommit();
const result = {
  bench: 'serve',
  date,
  device: deviceName(S.backend),
  commit,
  node: process.version,
  model: { ...cfg, dtype: 'bf16', params: 0 },
  settings: { ...S, kvBudgetBytes, deadlineS: Number.isFinite(S.deadlineS) ? S.deadlineS : null, prefixCache: false, sampling: 'greedy, EOS ignored', arrivals: 'Poisson, same seed for every plan' },
  plans: [],
  runs: [],
};

function fmt(x, d = 2) {
  return Number.isFinite(x) ? x.toFixed(d) : '–';
}

function markdown(r) {
  const L = [];
  const s = r.settings;
  L.push(`# Serving benchmark, ${r.device}, ${r.date}, commit ${r.commit}`);
  L.push('');
  L.push(
    `Model: Llama-style random weights (bf16), ${r.model.numLayers} layers, hidden ${r.model.hiddenSize}, ${r.model.numHeads} heads / ${r.model.numKvHeads} KV heads × ${r.model.headDim}, ` +
      `MLP ${r.model.intermediateSize}, vocab ${r.model.vocabSize} (${(r.model.params / 1e9).toFixed(2)}B parameters). Backend ${s.backend}, bf16 KV, blocks of 16 tokens, prefix cache off.`,
  );
  L.push(
    `Workload: prompts of ${s.promptTokens} random tokens, ${s.outputTokens} generated tokens each (greedy, EOS ignored), Poisson arrivals for ${s.durationS} s at each rate ` +
      `(same arrival times and prompts for every plan), then up to ${s.drainS} s to finish (what is left is cancelled and not counted). ` +
      `KV budget ${formatBytes(s.kvBudgetBytes)} for every plan; sliding window ${s.window}; scheduler: ${s.maxBatchTokens} tokens per step, prefill chunks of ${s.prefillChunk}, at most ${s.maxRunning} running.`,
  );
  L.push('');
  L.push('Memory model for this budget (sequences growing to prompt + output, chunked prefill):');
  L.push('');
  L.push('| plan | KV caches | bytes/token | KV per sequence | max concurrent (model) | (allocator) |');
  L.push('|---|---:|---:|---:|---:|---:|');
  for (const p of r.plans) {
    L.push(`| ${p.name} | ${p.caches} | ${formatBytes(p.kvBytesPerToken)} | ${formatBytes(p.kvBytesAtContext)} | ${p.maxConcurrentSequences} | ${p.allocatorReached} |`);
  }
  L.push('');
  L.push(
    '| plan | offered req/s | done / offered | req/s | output tok/s | prompt tok/s | TTFT p50 / p99 (s) | ITL p50 / p99 (ms) | running max (mean) | max (model) | KV peak | preempt. (recomputed tok) | step ms (decode-only) | engine share |',
  );
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of r.runs) {
    const p = r.plans.find((q) => q.name === x.plan);
    L.push(
      `| ${x.plan} | ${x.rate} | ${x.completed} / ${x.offered} | ${fmt(x.requestsPerS)} | ${fmt(x.outputTokensPerS, 0)} | ${fmt(x.promptTokensPerS, 0)} | ` +
        `${fmt(x.ttftS.p50)} / ${fmt(x.ttftS.p99)} | ${fmt(x.itlMs.p50, 1)} / ${fmt(x.itlMs.p99, 1)} | ${x.running.max} (${fmt(x.running.mean, 1)}) | ${p?.maxConcurrentSequences ?? '–'} | ` +
        `${fmt(100 * x.kvPages.peakFraction, 0)}% | ${x.preemptions} (${x.recomputedTokens}) | ${fmt(x.steps.meanMs, 1)} (${fmt(x.steps.decodeOnlyMeanMs, 1)}) | ${fmt(100 * x.steps.engineShareOfWall, 0)}% |`,
    );
  }
  const gains = [];
  for (const rate of [...new Set(r.runs.map((x) => x.rate))]) {
    const base = r.runs.find((x) => x.rate === rate && x.plan === 'standard');
    if (!base) continue;
    for (const x of r.runs.filter((y) => y.rate === rate && y.plan !== 'standard')) {
      gains.push(
        `| ${x.plan} | ${rate} | ${fmt(x.running.max / base.running.max)}× | ${fmt(x.running.mean / base.running.mean)}× | ${fmt(x.requestsPerS / base.requestsPerS)}× | ` +
          `${fmt(x.outputTokensPerS / base.outputTokensPerS)}× | ${fmt(x.ttftS.p50 / base.ttftS.p50)}× | ${fmt(x.itlMs.p50 / base.itlMs.p50)}× |`,
      );
    }
  }
  if (gains.length > 0) {
    L.push('');
    L.push('Relative to `standard` at the same offered rate:');
    L.push('');
    L.push('| plan | offered req/s | running max | running mean | req/s | output tok/s | TTFT p50 | ITL p50 |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    L.push(...gains);
  }
  L.push('');
  L.push(
    'Columns: req/s and tok/s over the run (first arrival to last completion); TTFT from the scheduled arrival to the first token at the client; ITL between consecutive tokens at the client (completed requests); ' +
      'running = sequences holding KV at each step (scheduler.metrics()); KV peak = most pages in use / pool; step ms = mean engine.step time (decode-only steps in brackets); engine share = engine.step time / wall time of the run (the rest is host work between steps: planning, sampling, streaming).',
  );
  return L.join('\n') + '\n';
}

function save() {
  mkdirSync(S.out, { recursive: true });
  const base = join(S.out, `serve-${date}${S.tag ? `-${S.tag}` : ''}${smoke ? '-smoke' : ''}`);
  writeFileSync(`${base}.json`, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(`${base}.md`, markdown(result));
  return base;
}

// ---------------------------------------------------------------------------------------

log(`device: ${result.device}; commit ${commit}; backend ${S.backend}`);
const workloads = new Map(S.rates.map((rate, k) => [rate, workload(rate, k)]));
for (const [rate, w] of workloads) log(`rate ${rate}/s: ${w.length} requests over ${S.durationS} s`);

// Every plan's engine is built first (same weights, same KV budget; they fit one GPU side by
// side), then the runs go rate by rate, each rate over every plan: if the deadline cuts the
// bench short, what is left out is a whole rate, never one plan of a rate.
const engines = [];
const modelOpts = { maxBatchTokens: S.maxBatchTokens, prefillChunk: S.prefillChunk, maxRunningSequences: S.maxRunning };
try {
  for (const name of S.plans) {
    const plan = presetPlan(name, cfg.numLayers, { window: S.window });
    const rep = kvReport(plan, {
      numKvHeads: cfg.numKvHeads,
      headDim: cfg.headDim,
      blockSize: 16,
      dtypeBytes: 2,
      context: S.promptTokens + S.outputTokens,
      budgetBytes: kvBudgetBytes,
      chunk: S.prefillChunk,
    });
    result.plans.push({
      name,
      caches: new Set(plan.layers.map((l) => l.kvSource)).size,
      kvBytesPerToken: rep.kvBytesPerToken,
      kvBytesAtContext: rep.kvBytesAtContext,
      pagesPerSequence: rep.pagesPerSequence,
      totalPages: rep.totalPages,
      maxConcurrentSequences: rep.maxConcurrentSequences,
      allocatorReached: rep.allocatorReached,
    });
    const tb = performance.now();
    const engine = await Engine.createAsync(cfg, plan, weights(plan), {
      backend: S.backend,
      threads: S.threads,
      kvDtype: 'bf16',
      kvBudgetBytes,
      prefixCache: false,
    });
    const rec = instrument(engine);
    engines.push({ name, engine, rec });
    log(`${name}: engine ready in ${((performance.now() - tb) / 1000).toFixed(1)} s (${engine.blocks.numPages} pages of ${formatBytes(engine.pageBytes)}; model max concurrency ${rep.maxConcurrentSequences})`);
    const tw = performance.now();
    const warm = new Model(engine, modelOpts);
    rec.model = warm;
    await warmUp(warm);
    log(`${name}: warmed up in ${((performance.now() - tw) / 1000).toFixed(1)} s`);
  }
  result.model.params = weightSpecs(cfg, presetPlan('standard', cfg.numLayers)).reduce((s, w) => s + w.shape.reduce((x, y) => x * y, 1), 0);

  for (const rate of S.rates) {
    for (const { name, engine, rec } of engines) {
      const left = S.deadlineS - (performance.now() - t0Process) / 1000;
      if (left < S.durationS + S.drainS + 5) {
        log(`${name} @ ${rate}/s: skipped, ${left.toFixed(0)} s left before the deadline`);
        result.skipped = [...(result.skipped ?? []), `${name}@${rate}`];
        continue;
      }
      const model = new Model(engine, modelOpts); // a fresh scheduler (metrics from zero) on the same engine
      rec.model = model;
      const run = { plan: name, ...(await runLoad(model, rec, rate, workloads.get(rate))) };
      result.runs.push(run);
      log(
        `${name} @ ${rate}/s: ${run.completed}/${run.offered} done in ${run.windowS.toFixed(1)} s, ${run.requestsPerS.toFixed(2)} req/s, ${run.outputTokensPerS.toFixed(0)} out tok/s, ` +
          `TTFT p50 ${fmt(run.ttftS.p50)} s p99 ${fmt(run.ttftS.p99)} s, ITL p50 ${fmt(run.itlMs.p50, 1)} ms p99 ${fmt(run.itlMs.p99, 1)} ms, running max ${run.running.max} mean ${run.running.mean.toFixed(1)}, ` +
          `KV peak ${(100 * run.kvPages.peakFraction).toFixed(0)}%, preemptions ${run.preemptions}, steps ${run.steps.count} × ${run.steps.meanMs.toFixed(1)} ms, engine share ${(100 * run.steps.engineShareOfWall).toFixed(0)}%`,
      );
      save();
    }
  }
} finally {
  for (const { engine } of engines) engine.dispose();
}
const base = save();
log(`wrote ${base}.json and ${base}.md`);
process.stdout.write('\n' + markdown(result));
