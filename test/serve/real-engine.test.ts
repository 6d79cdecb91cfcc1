/**
 * The scheduler on the real CPU engine (HF fixtures: llama3 = global attention only, mixattn
 * = a global class and a sliding class shared across layers): batches, chunked prefill and
 * preemption by recomputation give exactly the tokens of each request served alone.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type GenerateOptions, type LoadModelOptions, type Model } from '../../lib/api/index.js';
import { pagesPerSequence } from '../../lib/kv/memory-model.js';
import { expectedOf, fixture } from '../api/helpers.js';

interface Req {
  readonly ids: number[];
  readonly opts: GenerateOptions;
}

const greedy = (maxTokens: number): GenerateOptions => ({ temperature: 0, maxTokens, ignoreEos: true });

/** Prompt ids from a seed (vocab 300 in the fixtures). */
const idsOf = (seed: number, n: number) => Array.from({ length: n }, (_, i) => (seed * 131 + i * 37 + ((i * i) % 11)) % 300);

async function together(model: Model, reqs: readonly Req[]): Promise<number[][]> {
  const rs = await Promise.all(reqs.map((r) => model.complete({ promptIds: r.ids }, r.opts)));
  return rs.map((r) => r.tokenIds);
}

/** Pages a request needs to run alone, as generate() fits maxTokens (token by token is the worst growth). */
function alonePages(model: Model, r: Req): number {
  return pagesPerSequence(model.engine.layout, r.ids.length + (r.opts.maxTokens ?? 1) - 1, 1);
}

/** Served one at a time, on a model with a large pool and no prefix cache: the reference. */
class AloneCache {
  private readonly memo = new Map<string, number[]>();
  constructor(private readonly model: Model) {}
  async of(r: Req): Promise<number[]> {
    const key = JSON.stringify(r);
    if (!this.memo.has(key)) this.memo.set(key, (await this.model.complete({ promptIds: r.ids }, r.opts)).tokenIds);
    return this.memo.get(key)!;
  }
}

async function small(name: string, pages: number, opts: LoadModelOptions): Promise<Model> {
  const probe = await loadModel(fixture(name), { threads: 2, kvBudgetBytes: 1 << 20 });
  const pageBytes = probe.engine.pageBytes;
  probe.dispose();
  return loadModel(fixture(name), { threads: 2, kvBudgetBytes: pages * pageBytes, ...opts });
}

describe.each(['llama3', 'mixattn'])('scheduler on the real engine (%s)', (name) => {
  let ref: Model;
  let alone: AloneCache;
  beforeAll(async () => {
    ref = await loadModel(fixture(name), { threads: 2, prefixCache: false });
    alone = new AloneCache(ref);
  });
  afterAll(() => ref.dispose());

  const mixed: Req[] = [
    ...expectedOf(name).map((p) => ({ ids: p.ids, opts: greedy(32) })),
    { ids: idsOf(1, 60), opts: greedy(20) },
    { ids: idsOf(2, 1), opts: greedy(40) },
    { ids: idsOf(3, 33), opts: greedy(5) },
    { ids: idsOf(4, 17), opts: { temperature: 0.8, topK: 40, seed: 11, maxTokens: 24, ignoreEos: true } },
  ];

  it('a batch with chunked prefill mixed into decodes gives each request its tokens served alone (and HF\'s greedy tokens)', async () => {
    const model = await loadModel(fixture(name), { threads: 2, prefillChunk: 7, maxBatchTokens: 24 });
    try {
      const got = await together(model, mixed);
      for (const [i, r] of mixed.entries()) expect(got[i], `request ${i}`).toEqual(await alone.of(r));
      expect(got.slice(0, 3)).toEqual(expectedOf(name).map((p) => p.greedy));
      expect(model.engine.blocks.usedPages).toBe(0);
    } finally {
      model.dispose();
    }
  });

  for (const prefixCache of [false, true]) {
    it(`preemption by recomputation (prefix cache ${prefixCache ? 'on' : 'off'}) gives exactly the tokens of unpreempted runs, greedy and seeded`, async () => {
      const need = Math.max(...mixed.map((r) => alonePages(ref, r)));
      const model = await small(name, need + 4, { prefixCache });
      try {
        const got = await together(model, mixed);
        for (const [i, r] of mixed.entries()) expect(got[i], `request ${i}`).toEqual(await alone.of(r));
        const m = model.scheduler.metrics();
        expect(m.totals.preemptions).toBeGreaterThan(0);
        expect(m.finished).toMatchObject({ length: mixed.length, error: 0 });
        expect(m.pages.used).toBe(0);
        expect(model.engine.blocks.liveSequences).toBe(0);
      } finally {
        model.dispose();
      }
    });
  }

  it('property: random workloads, limits and small pools give every request its tokens served alone, and free every page', async () => {
    const reqArb = fc.record({ seed: fc.nat({ max: 1000 }), len: fc.integer({ min: 1, max: 50 }), maxTokens: fc.integer({ min: 1, max: 24 }) });
    await fc.assert(
      fc.asyncProperty(
        fc.array(reqArb, { minLength: 2, maxLength: 7 }),
        fc.record({
          prefillChunk: fc.integer({ min: 1, max: 40 }),
          maxBatchTokens: fc.integer({ min: 1, max: 64 }),
          maxRunningSequences: fc.integer({ min: 1, max: 6 }),
        }),
        fc.integer({ min: 0, max: 30 }),
        fc.boolean(),
        async (raw, limits, slack, prefixCache) => {
          const reqs: Req[] = raw.map((r) => ({ ids: idsOf(r.seed, r.len), opts: greedy(r.maxTokens) }));
          const pages = Math.max(...reqs.map((r) => alonePages(ref, r))) + slack;
          const model = await small(name, pages, { ...limits, prefixCache });
          try {
            const got = await together(model, reqs);
            for (const [i, r] of reqs.entries()) expect(got[i], `request ${i}`).toEqual(await alone.of(r));
            expect(model.engine.blocks.usedPages).toBe(0);
            expect(model.engine.blocks.liveSequences).toBe(0);
          } finally {
            model.dispose();
          }
        },
      ),
      { numRuns: 8, seed: 42 },
    );
  });
});

describe('cancellation on the real engine', () => {
  it('an aborted waiting request ends at once; an aborted running one frees its blocks after the step in flight', async () => {
    const model = await loadModel(fixture('mixattn'), { threads: 2, maxRunningSequences: 1 });
    try {
      const blocks = model.engine.blocks;
      const acRun = new AbortController();
      const acWait = new AbortController();
      const running = model.generate({ promptIds: idsOf(5, 20) }, { ...greedy(10_000), signal: acRun.signal });
      const first = await running.next(); // admitted, one token out
      expect(first.value!.tokenIds).toHaveLength(1);
      const waiting = model.generate({ promptIds: idsOf(6, 20) }, { ...greedy(10), signal: acWait.signal });
      const pending = waiting.next();
      await new Promise((r) => setImmediate(r));
      const used = blocks.usedPages;
      acWait.abort();
      const end = await pending;
      expect(end.value).toMatchObject({ finishReason: 'abort', tokenIds: [], usage: { completionTokens: 0 } });
      expect(blocks.usedPages).toBe(used); // it held nothing; the running one is unaffected
      acRun.abort();
      let last;
      for await (const c of running) last = c;
      expect(last!.finishReason).toBe('abort');
      expect(blocks.usedPages).toBe(0);
      expect(model.scheduler.metrics().finished.abort).toBe(2);
    } finally {
      model.dispose();
    }
  });
});
