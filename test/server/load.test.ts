/**
 * The load test: 200 concurrent streaming requests (completions and chat, greedy, varied
 * prompts and max_tokens) on the tiny MixAttention fixture (sliding-window layers sharing KV
 * caches, so sliding classes free blocks as they go), a fifth of them aborted at random
 * moments. Every response that was not cut must be complete ([DONE] after the finish reason
 * and usage) and equal to the same request served alone; nothing may fail; every KV page
 * must be back in the pool at the end. Sized for a 2-core CI machine (seconds, not minutes).
 * LOAD_SEED=n replays another draw; LOAD_FIXTURE=llama3 (any test/fixtures/hf/ model) another model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../lib/api/index.js';
import type { MixattnServer } from '../../lib/server/index.js';
import { aroundSteps } from '../api/helpers.js';
import { MODEL_NAME, connections, rawStream, serveFixture, until, type RawStream } from './helpers.js';

const REQUESTS = 200;
const ABORTED = REQUESTS / 5;
const WORDS = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'river', 'stone', 'quiet', 'blue', 'seven', 'hello', 'world', 'émigré', 'naïve', 'café', '東京', 'data', 'node', 'tiny'];

/** A small seeded PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Spec {
  path: string;
  body: Record<string, unknown>;
  /** Abort after this many SSE events, or after this many ms; none: run to the end. */
  abort?: { events: number } | { ms: number };
}

interface Outcome {
  text: string;
  finish: string | undefined;
  completionTokens: number | undefined;
  complete: boolean;
  errors: number;
}

function makeSpecs(seed: number): Spec[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const specs: Spec[] = Array.from({ length: REQUESTS }, (_, i) => {
    const prompt = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pick(WORDS)).join(' ');
    const common = { model: MODEL_NAME, temperature: 0, max_tokens: 8 + Math.floor(rand() * 25), stream: true, stream_options: { include_usage: true } };
    return i % 2 === 0
      ? { path: '/v1/completions', body: { ...common, prompt } }
      : { path: '/v1/chat/completions', body: { ...common, messages: [{ role: 'user', content: prompt }] } };
  });
  // a fifth aborted: half after some events (mid-stream), half after some time (possibly before the first token)
  const order = specs.map((_, i) => i).sort(() => rand() - 0.5);
  order.slice(0, ABORTED).forEach((i, k) => {
    specs[i].abort = k % 2 === 0 ? { events: 1 + Math.floor(rand() * 12) } : { ms: Math.floor(rand() * 200) };
  });
  return specs;
}

function outcome(r: RawStream): Outcome {
  const out: Outcome = { text: '', finish: undefined, completionTokens: undefined, complete: false, errors: 0 };
  for (const e of r.events) {
    if (e === '[DONE]') {
      out.complete = true;
      continue;
    }
    if ('error' in e) out.errors++;
    const usage = e.usage as { completion_tokens: number } | null | undefined;
    if (usage) out.completionTokens = usage.completion_tokens;
    const choice = (e.choices as { text?: string; delta?: { content?: string }; finish_reason: string | null }[])[0];
    if (!choice) continue;
    out.text += choice.text ?? choice.delta?.content ?? '';
    if (choice.finish_reason) out.finish = choice.finish_reason;
  }
  return out;
}

async function run(server: MixattnServer, spec: Spec): Promise<RawStream> {
  const ac = new AbortController();
  const a = spec.abort;
  const timer = a && 'ms' in a ? setTimeout(() => ac.abort(), a.ms) : undefined;
  try {
    return await rawStream(`${server.url}${spec.path}`, spec.body, ac, (n) => {
      if (a && 'events' in a && n >= a.events) ac.abort();
    });
  } finally {
    clearTimeout(timer);
  }
}

describe('load: 200 concurrent streams, a fifth aborted', () => {
  let server: MixattnServer;
  let model: Model;
  beforeAll(async () => {
    ({ server, model } = await serveFixture(process.env.LOAD_FIXTURE ?? 'mixattn'));
  });
  afterAll(() => server.close());

  it('every other response is complete and equal to the request served alone; every KV page returns', async () => {
    const specs = makeSpecs(Number(process.env.LOAD_SEED ?? 20240607));
    // served alone, one at a time
    const alone: Outcome[] = [];
    for (const s of specs) alone.push(outcome(await rawStream(`${server.url}${s.path}`, s.body)));
    expect(alone.every((o) => o.complete && o.errors === 0 && o.finish !== undefined)).toBe(true);

    const t0 = performance.now();
    let widest = 0;
    // The first step waits until most requests are in (the tiny model would otherwise finish
    // early ones before late ones arrive): the streams then really run in shared steps.
    let gate: Promise<unknown> | undefined = until(() => server.activeGenerations >= REQUESTS * 0.7, 5000);
    const restore = aroundSteps(model.engine, async (entries, runStep) => {
      if (gate) await gate;
      gate = undefined;
      widest = Math.max(widest, entries.length);
      return runStep();
    });
    let results: RawStream[];
    try {
      results = await Promise.all(specs.map((s) => run(server, s)));
    } finally {
      restore();
    }
    const seconds = (performance.now() - t0) / 1000;

    let aborted = 0;
    const mismatches: string[] = [];
    let compared = 0;
    results.forEach((r, i) => {
      expect(r.status === 0 || r.status === 200, `request ${i}: status ${r.status}`).toBe(true);
      const o = outcome(r);
      expect(o.errors, `request ${i}: error events`).toBe(0);
      if (r.aborted) {
        expect(specs[i].abort, `request ${i} was cut without being aborted`).toBeDefined();
        aborted++;
        return;
      }
      // not aborted (or its abort came after the end): the whole response, as alone
      compared++;
      const ref = alone[i];
      const ended = r.events.at(-1) === '[DONE]' && o.complete;
      if (!ended || o.text !== ref.text || o.finish !== ref.finish || o.completionTokens !== ref.completionTokens) {
        mismatches.push(`request ${i}: ${JSON.stringify({ ended, text: o.text, finish: o.finish, tokens: o.completionTokens })} alone ${JSON.stringify(ref)}`);
      }
    });
    console.log(`load: ${REQUESTS} concurrent streams in ${seconds.toFixed(2)} s; ${aborted} aborted, ${compared} compared, ${mismatches.length} mismatches; widest step ${widest}`);
    expect(mismatches).toEqual([]);

    // every connection closed (a cut one may still be queued on the server side), every generation ended
    for (let i = 0; i < 1000 && (await connections(server)) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await connections(server)).toBe(0);
    expect(server.requestsInFlight).toBe(0);
    expect(await until(() => server.activeGenerations === 0 && model.engine.blocks.usedPages === 0, 10_000)).toBe(true);
    expect(model.engine.blocks.liveSequences).toBe(0);
    // what is not free is only the prefix cache's (evictable, held by no request)
    expect(model.engine.blocks.freePages + model.engine.blocks.cachedPages).toBe(model.engine.blocks.numPages);
    expect(aborted).toBeGreaterThan(ABORTED / 2);
    expect(compared + aborted).toBe(REQUESTS);
    expect(widest).toBeGreaterThan(100); // the streams really shared steps
  });
});
