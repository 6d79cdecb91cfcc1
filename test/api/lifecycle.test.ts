import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type GenerateChunk, type Model } from '../../lib/api/index.js';
import { aroundSteps, drain, expectedOf, fixture, idsOf } from './helpers.js';

describe('generation lifecycle: abort, break, concurrency, dispose, KV limits', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixture('mistral'), { threads: 2 });
  });
  afterAll(() => model.dispose());
  const prompts = expectedOf('mistral');
  const used = () => model.engine.blocks.usedPages;

  it('abort in the middle: the stream ends with finishReason abort and every block is free', async () => {
    const ac = new AbortController();
    const chunks: GenerateChunk[] = [];
    for await (const c of model.generate({ promptIds: prompts[2].ids }, { temperature: 0, maxTokens: 2000, ignoreEos: true, signal: ac.signal })) {
      chunks.push(c);
      if (chunks.length === 3) {
        expect(used()).toBeGreaterThan(0);
        ac.abort();
      }
    }
    const last = chunks.at(-1)!;
    expect(last.finishReason).toBe('abort');
    expect(last.usage!.completionTokens).toBeLessThan(2000);
    expect(last.usage!.completionTokens).toBe(idsOf(chunks).length);
    expect(idsOf(chunks)).toEqual(prompts[2].greedy.slice(0, idsOf(chunks).length));
    expect(used()).toBe(0);
    expect(model.engine.blocks.liveSequences).toBe(0);
  });

  it('a signal aborted before the start gives one abort chunk and no tokens', async () => {
    const chunks = await drain(model.generate({ promptIds: prompts[0].ids }, { signal: AbortSignal.abort() }));
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatchObject({ finishReason: 'abort', tokenIds: [], usage: { completionTokens: 0 } });
    expect(used()).toBe(0);
  });

  it('break out of for-await releases the sequence before the loop statement completes', async () => {
    let n = 0;
    for await (const c of model.generate({ promptIds: prompts[1].ids }, { temperature: 0, maxTokens: 2000, ignoreEos: true })) {
      expect(c.tokenIds).toHaveLength(1);
      if (++n === 2) break;
    }
    expect(used()).toBe(0);
    expect(model.engine.blocks.liveSequences).toBe(0);
    // a stream never iterated holds nothing; return() on it is harmless
    const idle = model.generate({ promptIds: prompts[1].ids });
    await idle.return!();
    expect(used()).toBe(0);
  });

  it('concurrent generations give the same tokens as alone', async () => {
    const greedy = prompts.map((p) => ({ promptIds: p.ids }));
    const sampled = { temperature: 0.9, topK: 20, seed: 7, maxTokens: 32 };
    const alone: number[][] = [];
    for (const g of greedy) alone.push((await model.complete(g, { temperature: 0, maxTokens: 32 })).tokenIds);
    alone.push((await model.complete(greedy[1], sampled)).tokenIds);
    // record the batch sizes of the shared steps
    let widest = 0;
    const restore = aroundSteps(model.engine, (entries, run) => {
      widest = Math.max(widest, entries.length);
      return run();
    });
    let together;
    try {
      together = await Promise.all([
        ...greedy.map((g) => model.complete(g, { temperature: 0, maxTokens: 32 })),
        model.complete(greedy[1], sampled),
      ]);
    } finally {
      restore();
    }
    expect(widest).toBe(4);
    expect(together.map((r) => r.tokenIds)).toEqual(alone);
    expect(alone.slice(0, 3)).toEqual(prompts.map((p) => p.greedy));
    expect(used()).toBe(0);
  });

  it('concurrent streams with one aborted: the others finish unchanged', async () => {
    const ac = new AbortController();
    const a = drain(model.generate({ promptIds: prompts[0].ids }, { temperature: 0, maxTokens: 32 }));
    const b = (async () => {
      const out: GenerateChunk[] = [];
      for await (const c of model.generate({ promptIds: prompts[1].ids }, { temperature: 0, maxTokens: 500, ignoreEos: true, signal: ac.signal })) {
        out.push(c);
        if (out.length === 4) ac.abort();
      }
      return out;
    })();
    const [ra, rb] = await Promise.all([a, b]);
    expect(idsOf(ra)).toEqual(prompts[0].greedy);
    expect(rb.at(-1)!.finishReason).toBe('abort');
    expect(used()).toBe(0);
  });

  it('a prompt the KV pool cannot hold is a clear error; maxTokens is fitted to the pool', async () => {
    const small = await loadModel(fixture('llama3'), { threads: 2, kvBudgetBytes: 64 * 1024 });
    try {
      const { layout } = small.engine;
      const bs = layout.blockSize;
      // a block of tokens takes one page per owning layer (llama3: no sharing, global layers)
      const blocks = Math.floor(small.engine.blocks.numPages / layout.classes.reduce((a, c) => a + c.pagesPerBlock, 0));
      const long = Array.from({ length: blocks * bs + 1 }, (_, i) => i % 300);
      expect(() => small.generate({ promptIds: long })).toThrow(/the prompt \(\d+ tokens\) needs \d+ KV pages .* but the KV pool holds \d+ .*kvBudgetBytes/);
      const fits = long.slice(0, (blocks - 1) * bs);
      const r = await small.complete({ promptIds: fits }, { temperature: 0, maxTokens: 10 * bs, ignoreEos: true });
      expect(r.finishReason).toBe('length');
      expect(r.usage.completionTokens).toBe(bs + 1); // one more block, and the last token is never written
      expect(small.engine.blocks.usedPages).toBe(0);
      // two requests that each need most of the pool run one after the other
      const both = await Promise.all([0, 1].map(() => small.complete({ promptIds: fits }, { temperature: 0, maxTokens: bs })));
      expect(both[0].tokenIds).toEqual(both[1].tokenIds);
    } finally {
      small.dispose();
    }
  });

  it('dispose: streams in flight end with abort, later generate() throws, asyncDispose waits', async () => {
    const m = await loadModel(fixture('llama3'), { threads: 2 });
    const chunks: GenerateChunk[] = [];
    for await (const c of m.generate({ promptIds: [1, 2, 3] }, { temperature: 0, maxTokens: 1000, ignoreEos: true })) {
      chunks.push(c);
      if (chunks.length === 2) m.dispose();
    }
    expect(chunks.at(-1)!.finishReason).toBe('abort');
    expect(m.disposed).toBe(true);
    expect(m.engine.disposed).toBe(true);
    expect(() => m.generate({ promptIds: [1] })).toThrow(/disposed/);
    const m2 = await loadModel(fixture('llama3'), { threads: 2 });
    const pending = m2.complete({ promptIds: [1, 2, 3] }, { maxTokens: 1000, ignoreEos: true });
    await m2[Symbol.asyncDispose]();
    expect((await pending).finishReason).toBe('abort');
  });
});
