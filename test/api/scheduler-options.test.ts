/** loadModel's scheduler limits reach the scheduler, and generate() runs through it. */
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/api/index.js';
import { aroundSteps, expectedOf, fixture } from './helpers.js';

describe('loadModel scheduler options', () => {
  it('maxRunningSequences, maxBatchTokens and prefillChunk bound every step; results are unchanged', async () => {
    const prompts = expectedOf('llama3');
    const model = await loadModel(fixture('llama3'), { threads: 2, maxRunningSequences: 2, maxBatchTokens: 6, prefillChunk: 4 });
    try {
      expect(model.scheduler.limits).toMatchObject({ maxRunningSequences: 2, maxBatchTokens: 6, prefillChunk: 4 });
      let widest = 0;
      let most = 0;
      let longest = 0;
      const restore = aroundSteps(model.engine, (entries, run) => {
        widest = Math.max(widest, entries.length);
        most = Math.max(most, entries.reduce((a, e) => a + e.tokens.length, 0));
        longest = Math.max(longest, ...entries.map((e) => e.tokens.length));
        return run();
      });
      const rs = await Promise.all(prompts.map((p) => model.complete({ promptIds: p.ids }, { temperature: 0, maxTokens: 32 })));
      restore();
      expect(rs.map((r) => r.tokenIds)).toEqual(prompts.map((p) => p.greedy));
      expect([widest, most, longest]).toEqual([2, 6, 4]); // two 4-token chunks would be 8: the second gets 2
      const m = model.scheduler.metrics();
      expect(m.finished.length).toBe(3);
      expect(m.timeToFirstToken.count).toBe(3);
      expect(m.totals.generationTokens).toBe(96);
    } finally {
      model.dispose();
    }
  });

  it('invalid limits are rejected naming the option, and nothing stays loaded', async () => {
    await expect(loadModel(fixture('llama3'), { maxBatchTokens: 0 })).rejects.toThrow(/maxBatchTokens must be an integer >= 1/);
    await expect(loadModel(fixture('llama3'), { maxRunningSequences: 2.5 })).rejects.toThrow(/maxRunningSequences/);
    await expect(loadModel(fixture('llama3'), { prefillChunk: -1 })).rejects.toThrow(/prefillChunk/);
  });
});
