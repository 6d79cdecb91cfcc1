/** The scheduler's policies, one by one, on the simulated engine. */
import { describe, expect, it } from 'vitest';
import { pagesPerSequence } from '../../lib/kv/memory-model.js';
import { Scheduler, type StepInfo } from '../../lib/serve/index.js';
import { drive, promptOf } from './drive.js';
import { checkBlocks, SimClient, SimEngine, simLayout, simReference } from './sim.js';

const sizes = (info: StepInfo) => info.plan.entries.map((e) => e.tokens.length);

/** A scheduler whose steps are recorded as [request id, tokens] pairs. */
function recorded(engine: SimEngine, limits: ConstructorParameters<typeof Scheduler>[1] = {}) {
  const steps: [number, number][][] = [];
  const s = new Scheduler(engine, { ...limits, onStep: (info) => steps.push(info.requestIds.map((id, j) => [id, sizes(info)[j]])) });
  return { s, steps };
}

describe('scheduler policies (simulated engine)', () => {
  it('continuous batching with chunked prefill: a long prompt joins running decodes in chunks, no decode is skipped', async () => {
    const engine = new SimEngine(simLayout('ma'), 1000);
    const { s, steps } = recorded(engine, { prefillChunk: 16, maxBatchTokens: 18 });
    const a = new SimClient(promptOf(1, 5), 30);
    const b = new SimClient(promptOf(2, 5), 30);
    const long = new SimClient(promptOf(3, 100), 4);
    s.submit(a);
    s.submit(b);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r)); // a and b are decoding now
    s.submit(long);
    await s.idle();
    const joined = steps.findIndex((st) => st.some(([id]) => id === 2));
    const prefill = steps.slice(joined, joined + 7);
    // Two decodes and the budget's remaining 16 prompt tokens per step: 100 = 6 × 16 + 4.
    expect(prefill.map((st) => st.find(([id]) => id === 2)![1])).toEqual([16, 16, 16, 16, 16, 16, 4]);
    for (const st of prefill) {
      expect(st.filter(([id]) => id !== 2)).toEqual([[0, 1], [1, 1]]);
      expect(st.reduce((x, [, n]) => x + n, 0)).toBeLessThanOrEqual(18);
    }
    expect([a.tokens, b.tokens, long.tokens]).toEqual([a, b, long].map((c) => simReference(c.promptIds, c.maxTokens)));
  });

  it('admits by the next step\'s pages, not the worst case: more requests run at once than worst-case reservations allow', async () => {
    const layout = simLayout('standard');
    const reqs = Array.from({ length: 6 }, (_, i) => ({ arrival: 0, prompt: promptOf(i, 12), maxTokens: 40 }));
    const worst = pagesPerSequence(layout, 12 + 40 - 1, 1);
    const pages = worst + worst / 2; // worst-case admission: one at a time
    const res = await drive(new SimEngine(layout, pages), { admissionWatermarkPages: 0 }, reqs);
    expect(res.maxRunning).toBeGreaterThanOrEqual(3);
    res.clients.forEach((c, i) => expect(c.tokens).toEqual(simReference(reqs[i].prompt, 40)));
    expect(res.scheduler.metrics().totals.preemptions).toBeGreaterThan(0);
  });

  it('does not start a prompt beside running ones unless all their prefills can finish: no prefill is thrown away', async () => {
    const layout = simLayout('standard');
    // Room for one 64-token prompt and a half: chunk-by-chunk admission would start both,
    // run out of pages mid-prefill and recompute the second; prompt-aware admission waits.
    const pages = Math.floor(pagesPerSequence(layout, 64 + 8, 1) * 1.5);
    const reqs = [0, 1].map((i) => ({ arrival: 0, prompt: promptOf(i, 64), maxTokens: 8 }));
    const res = await drive(new SimEngine(layout, pages), { admissionWatermarkPages: 0, prefillChunk: 8 }, reqs);
    res.clients.forEach((c, i) => expect(c.tokens).toEqual(simReference(reqs[i].prompt, 8)));
    expect(res.maxRunning).toBe(1);
    expect(res.scheduler.metrics().totals.recomputedTokens).toBe(0);
  });

  it('preempts the newest request, recomputes it later; its client sees every token exactly once', async () => {
    const layout = simLayout('standard', 4);
    const engine = new SimEngine(layout, pagesPerSequence(layout, 40 + 60, 1) + 8);
    const s = new Scheduler(engine, { admissionWatermarkPages: 0 });
    const clients = [0, 1, 2].map((i) => new SimClient(promptOf(i, 40), 60));
    const handles = clients.map((c) => s.submit(c));
    await s.idle();
    const pre = handles.map((h) => (h as unknown as { preemptions: number }).preemptions);
    expect(pre[0]).toBe(0);
    expect(pre[2]).toBeGreaterThan(0);
    clients.forEach((c) => {
      expect(c.tokens).toEqual(simReference(c.promptIds, 60));
      expect(c.end).toEqual({ reason: 'length' });
    });
    const m = s.metrics();
    expect(m.totals.preemptions).toBe(pre.reduce((a, b) => a + b, 0));
    expect(m.totals.recomputedTokens).toBeGreaterThan(0);
    expect(engine.blocks.usedPages).toBe(0);
  });

  it('a request that cannot fit even alone fails with a clear error; the others are served', async () => {
    const layout = simLayout('standard', 4);
    const engine = new SimEngine(layout, pagesPerSequence(layout, 20, 1));
    const s = new Scheduler(engine);
    const ok = new SimClient(promptOf(1, 10), 11);
    const big = new SimClient(promptOf(2, 10), 50);
    s.submit(big);
    s.submit(ok);
    await s.idle();
    expect(big.end?.reason).toBe('error');
    expect(String((big.end as { error: unknown }).error)).toMatch(/request 0 cannot fit in the KV pool even alone: its next token at position \d+ .* needs \d+ pages but the pool holds \d+/);
    expect(big.tokens.length).toBeGreaterThan(0); // it ran until the pool could not hold its next token
    expect(ok.tokens).toEqual(simReference(ok.promptIds, 11));
    expect(s.metrics().finished).toMatchObject({ error: 1, length: 1 });
    expect(engine.blocks.usedPages).toBe(0);
  });

  it('cancellation: a waiting request ends at once; a running one returns its blocks at once between steps, right after the step during one', async () => {
    const engine = new SimEngine(simLayout('ma'), 1000);
    const s = new Scheduler(engine, { maxRunningSequences: 1 });
    const run = new SimClient(promptOf(1, 20), 1000);
    const wait = new SimClient(promptOf(2, 20), 10);
    const hr = s.submit(run);
    const hw = s.submit(wait);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(hw.state).toBe('waiting');
    hw.cancel();
    expect(wait.end).toEqual({ reason: 'abort' });
    expect(hw.state).toBe('ended');
    // A step is in flight now: the running request ends right after it.
    expect(hr.state).toBe('running');
    hr.cancel();
    expect(hr.state).toBe('running');
    const ran = run.tokens.length;
    await s.idle();
    expect(run.end).toEqual({ reason: 'abort' });
    expect(run.tokens.length).toBeLessThanOrEqual(ran + 1);
    expect(engine.blocks.usedPages).toBe(0);
    // Between steps (e.g. from the client's own callback, after the step): released synchronously.
    const c = new SimClient(promptOf(3, 20), 1000);
    let freedAt = -1;
    c.nextToken = (row) => {
      const t = SimClient.prototype.nextToken.call(c, row);
      if (c.tokens.length === 3) {
        queueMicrotask(() => {
          const live = engine.blocks.liveSequences;
          h.cancel();
          freedAt = live - engine.blocks.liveSequences;
          checkBlocks(engine);
        });
      }
      return t;
    };
    const h = s.submit(c);
    await s.idle();
    expect(freedAt).toBe(1);
    expect(c.tokens).toHaveLength(3);
    expect(s.metrics().finished.abort).toBe(3);
  });

  it('a failed step ends its requests with the error and frees their blocks; the scheduler goes on', async () => {
    const engine = new SimEngine(simLayout('standard'), 200);
    const s = new Scheduler(engine);
    const step = engine.step.bind(engine);
    let fail = true;
    engine.step = async (entries) => {
      if (fail && engine.blocks.length(entries[0].seq) > 0) {
        fail = false;
        throw new Error('backend exploded');
      }
      return step(entries);
    };
    const a = new SimClient(promptOf(1, 8), 5);
    s.submit(a);
    await s.idle();
    expect(a.end).toMatchObject({ reason: 'error', error: new Error('backend exploded') });
    const b = new SimClient(promptOf(2, 8), 5);
    s.submit(b);
    await s.idle();
    expect(b.tokens).toEqual(simReference(b.promptIds, 5));
    expect(engine.blocks.usedPages).toBe(0);
  });

  it('a client that throws ends alone with its error', async () => {
    const engine = new SimEngine(simLayout('standard'), 200);
    const s = new Scheduler(engine);
    const bad = new SimClient(promptOf(1, 8), 5);
    bad.nextToken = () => {
      throw new Error('sampler broke');
    };
    const good = new SimClient(promptOf(2, 8), 5);
    s.submit(bad);
    s.submit(good);
    await s.idle();
    expect(bad.end).toMatchObject({ reason: 'error' });
    expect(good.tokens).toEqual(simReference(good.promptIds, 5));
  });

  it('prefix caching: a request sharing a cached prompt prefix starts its prefill past it, on a MixAttention plan as on full attention', async () => {
    for (const kind of ['standard', 'ma'] as const) {
      const engine = new SimEngine(simLayout(kind, 4, 6), 400, { prefixCache: true });
      const { s, steps } = recorded(engine, { prefillChunk: 64 });
      const system = promptOf(7, 40);
      const first = new SimClient([...system, 1, 2, 3], 5);
      s.submit(first);
      await s.idle();
      const second = new SimClient([...system, 4, 5], 5);
      s.submit(second);
      await s.idle();
      // 40 shared tokens = 10 full blocks, all found (the window's blocks suffice for 'ma').
      expect(steps.find((st) => st.some(([id]) => id === 1))).toEqual([[1, 2]]);
      expect(second.tokens).toEqual(simReference(second.promptIds, 5));
      const m = s.metrics();
      expect(m.prefixCache).toMatchObject({ enabled: true, queries: 2, hitTokens: 40 });
      expect(m.pages.used).toBe(0);
      expect(m.pages.cached).toBeGreaterThan(0);
    }
  });

  it('metrics: queue sizes, pages per class, tokens/s, time to first token, finish reasons', async () => {
    const engine = new SimEngine(simLayout('ma'), 300);
    const s = new Scheduler(engine, { maxRunningSequences: 2 });
    const clients = [0, 1, 2].map((i) => new SimClient(promptOf(i, 30), 20, i === 1 ? simReference(promptOf(1, 30), 20)[4] : -1));
    clients.forEach((c) => s.submit(c));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const mid = s.metrics();
    expect([mid.running, mid.waiting]).toEqual([2, 1]);
    expect(mid.classes.map((c) => [c.window, c.pagesPerBlock])).toEqual([[0, 1], [6, 2]]);
    expect(mid.classes.reduce((a, c) => a + c.pages, 0)).toBe(mid.pages.used);
    expect(mid.pages.used + mid.pages.free + mid.pages.cached).toBe(300);
    await s.idle();
    const m = s.metrics();
    expect([m.running, m.waiting, m.pages.used]).toEqual([0, 0, 0]);
    expect(m.finished).toEqual({ stop: 1, length: 2, abort: 0, error: 0 });
    expect(m.totals).toMatchObject({ requests: 3, promptTokens: 90, generationTokens: 45, preemptions: 0 });
    expect(m.tokensPerSecond.prompt).toBeGreaterThan(0);
    expect(m.tokensPerSecond.generation).toBeGreaterThan(0);
    expect(m.timeToFirstToken.count).toBe(3);
    expect(m.timeToFirstToken.counts.at(-1)).toBe(3); // every one under the last bound
    expect(m.timeToFirstToken.sum).toBeGreaterThan(0);
    expect(m.requestLatency.count).toBe(3);
    expect(m.queueTime.count).toBe(3);
    expect(m.interTokenLatency.count).toBe(45 - 3);
  });

  it('rejects invalid limits and empty prompts', () => {
    const engine = new SimEngine(simLayout('standard'), 10);
    expect(() => new Scheduler(engine, { maxBatchTokens: 0 })).toThrow(/maxBatchTokens must be an integer >= 1/);
    expect(() => new Scheduler(engine, { prefillChunk: 1.5 })).toThrow(/prefillChunk/);
    expect(() => new Scheduler(engine).submit(new SimClient([], 1))).toThrow(/empty/);
  });
});
