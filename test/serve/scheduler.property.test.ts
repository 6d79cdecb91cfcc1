/**
 * fast-check properties of the scheduler on the simulated engine (real block manager, fake
 * logits that depend on the whole token history): random arrivals, sizes, limits, stops and
 * cancellations on small pools, so that preemption is frequent.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { alonePages, drive, promptOf, type SimRequest } from './drive.js';
import { SIM_VOCAB, SimEngine, simLayout, simReference } from './sim.js';

const requestArb = fc.record({
  arrival: fc.integer({ min: 0, max: 40 }),
  promptLen: fc.integer({ min: 1, max: 48 }),
  seed: fc.nat({ max: 1 << 20 }),
  maxTokens: fc.integer({ min: 1, max: 40 }),
  stopToken: fc.option(fc.integer({ min: 0, max: SIM_VOCAB - 1 }), { freq: 3, nil: undefined }),
  cancelAt: fc.option(fc.integer({ min: 0, max: 80 }), { freq: 5, nil: undefined }),
  /** Starts with the case's shared prefix (a system prompt), for prefix-cache hits. */
  shared: fc.boolean(),
});

const caseArb = fc.record({
  layout: fc.constantFrom('standard' as const, 'ma' as const),
  blockSize: fc.integer({ min: 1, max: 6 }),
  requests: fc.array(requestArb, { minLength: 1, maxLength: 14 }),
  limits: fc.record({
    maxBatchTokens: fc.integer({ min: 1, max: 80 }),
    maxRunningSequences: fc.integer({ min: 1, max: 10 }),
    prefillChunk: fc.integer({ min: 1, max: 40 }),
    admissionWatermarkPages: fc.integer({ min: 0, max: 3 }),
  }),
  /** Pool size above the least that lets every request run alone. */
  slack: fc.integer({ min: 0, max: 60 }),
  prefixCache: fc.boolean(),
  sharedPrefix: fc.integer({ min: 0, max: 30 }),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function requestsOf(c: Case, arrivals = true): SimRequest[] {
  const common = promptOf(999, c.sharedPrefix);
  return c.requests.map((r) => ({
    arrival: arrivals ? r.arrival : 0,
    prompt: [...(r.shared ? common : []), ...promptOf(r.seed, r.promptLen)],
    maxTokens: r.maxTokens,
    stopToken: arrivals ? r.stopToken : undefined,
    cancelAt: arrivals ? r.cancelAt : undefined,
  }));
}

describe('scheduler properties (simulated engine)', () => {
  it('every request finishes with the tokens it would get alone; budgets, block invariants and accounting hold at every step', async () => {
    let preemptions = 0;
    let hits = 0;
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const layout = simLayout(c.layout, c.blockSize);
        const reqs = requestsOf(c);
        const pages = Math.max(...reqs.map((r) => alonePages(layout, r))) + c.slack;
        const engine = new SimEngine(layout, pages, { prefixCache: c.prefixCache });
        const res = await drive(engine, c.limits, reqs);
        // No starvation: every request ended; finished ones exactly as alone, unpreempted.
        reqs.forEach((r, i) => {
          const cl = res.clients[i];
          const want = simReference(r.prompt, r.maxTokens, r.stopToken);
          expect(cl.end, `request ${i}`).toBeDefined();
          if (cl.end!.reason === 'abort') {
            expect(res.cancelled.has(i)).toBe(true);
            expect(cl.tokens).toEqual(want.slice(0, cl.tokens.length));
          } else {
            expect(cl.end!.reason).toBe(want.at(-1) === r.stopToken ? 'stop' : 'length');
            expect(cl.tokens).toEqual(want);
          }
        });
        // Exact KV accounting: nothing held once every request has ended.
        expect(engine.blocks.usedPages).toBe(0);
        expect(engine.blocks.liveSequences).toBe(0);
        const m = res.scheduler.metrics();
        expect(m.running + m.waiting).toBe(0);
        expect(Object.values(m.finished).reduce((a, b) => a + b, 0)).toBe(reqs.length);
        expect(m.finished.error).toBe(0);
        expect(m.totals.generationTokens).toBe(res.clients.reduce((a, cl) => a + cl.tokens.length, 0));
        preemptions += m.totals.preemptions;
        hits += m.prefixCache.hitTokens;
        runs++;
      }),
      { numRuns: 300, seed: 20250117 },
    );
    // The pools are small enough that preemption is exercised, not just allowed (admission
    // waits until running prompts can finish, so preemption comes from decode growth).
    expect(preemptions).toBeGreaterThan(runs / 3);
    expect(hits).toBeGreaterThan(0);
  });

  it('the oldest running request is never preempted, and FCFS admission never lets a newer request overtake', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const layout = simLayout(c.layout, c.blockSize);
        const reqs = requestsOf(c, false);
        const engine = new SimEngine(layout, Math.max(...reqs.map((r) => alonePages(layout, r))) + c.slack, { prefixCache: c.prefixCache });
        const res = await drive(engine, c.limits, reqs);
        const starts = res.clients.map((cl) => cl.startedAt);
        // All arrive together: first admissions happen in arrival order.
        for (let i = 1; i < starts.length; i++) expect(starts[i]).toBeGreaterThanOrEqual(starts[i - 1]);
        // Request 0 is the oldest from start to end: it is never preempted.
        expect((res.clients[0].handle as unknown as { preemptions: number }).preemptions).toBe(0);
        expect(engine.blocks.usedPages).toBe(0);
      }),
      { numRuns: 150, seed: 7 },
    );
  });
});
