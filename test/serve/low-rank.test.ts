/**
 * Serving a low-rank K/V checkpoint (eigen_attention): the scheduler batches requests with
 * chunked prefill beside decodes on a small pool, and every request gets the float64
 * reference's greedy tokens.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/api/index.js';
import { referenceGreedy } from '../reference/helpers.js';
import { tempRoot } from '../hf/helpers.js';
import { cfg, plan, writeLowRankDir } from '../hf/low-rank-dir.js';

const tmp = tempRoot();
afterAll(() => tmp.cleanup());

describe('serving a low-rank checkpoint', () => {
  it('a batch with chunked prefill and decodes gives the reference greedy tokens; every page comes back', async () => {
    const dir = tmp.dir('eigen');
    const ref = writeLowRankDir(dir);
    const prompts = [[3, 17, 5, 40, 22, 9, 1, 33, 12, 28, 7, 19, 4], [8], [30, 11, 6, 6, 25, 14, 2, 38], [5, 5, 9, 21, 37]];
    const steps = 6;
    await using model = await loadModel(dir, { threads: 2, prefillChunk: 5, maxBatchTokens: 9 });
    const got = await Promise.all(prompts.map((ids) => model.complete({ promptIds: ids }, { temperature: 0, maxTokens: steps, ignoreEos: true })));
    prompts.forEach((ids, i) => expect(got[i].tokenIds, `request ${i}`).toEqual(referenceGreedy(cfg, plan, ref, ids, steps)));
    expect(model.engine.blocks.usedPages).toBe(0);
  });
});
