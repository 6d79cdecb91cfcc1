/**
 * Sampling on the device (Backend::sample through Engine.stepSampled) against sampling on the
 * host (logits downloaded, lib/sampling): Model.generate gives the same tokens and logprobs for
 * the same seeds, alone and in shared steps, with every knob of the policy — and the two models
 * really take different paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Completion, type GenerateOptions, type Model } from '../../lib/api/index.js';
import { expectedOf, fixture } from './helpers.js';

const POLICIES: GenerateOptions[] = [
  { temperature: 0, maxTokens: 12, logprobs: true, topLogprobs: 3 },
  { temperature: 0.8, topK: 20, seed: 1, maxTokens: 16, logprobs: true },
  { temperature: 1.2, topP: 0.9, seed: 2, maxTokens: 16, topLogprobs: 5 },
  { temperature: 1, minP: 0.05, seed: 3, maxTokens: 16, repetitionPenalty: 1.3 },
  { temperature: 0.7, topK: 50, topP: 0.8, minP: 0.02, seed: 4, maxTokens: 16, presencePenalty: 0.6, frequencyPenalty: 0.4, logprobs: true, topLogprobs: 2 },
  { temperature: 2, seed: 5, maxTokens: 16, frequencyPenalty: -0.5, repetitionPenalty: 0.9, ignoreEos: true },
];

/** Counts the steps each engine path runs. */
function countPaths(model: Model) {
  const engine = model.engine;
  const counts = { logits: 0, sampled: 0 };
  const step = engine.step.bind(engine);
  const stepSampled = engine.stepSampled.bind(engine);
  engine.step = ((entries) => (counts.logits++, step(entries))) as typeof engine.step;
  engine.stepSampled = (entries, sampling) => (counts.sampled++, stepSampled(entries, sampling));
  return counts;
}

function expectSameCompletion(dev: Completion, host: Completion, what: string): void {
  expect(dev.tokenIds, what).toEqual(host.tokenIds);
  expect(dev.finishReason, what).toBe(host.finishReason);
  expect(dev.logprobs?.length, what).toBe(host.logprobs?.length);
  dev.logprobs?.forEach((lp, i) => {
    const h = host.logprobs![i];
    expect(lp.token).toBe(h.token);
    if (Number.isNaN(h.logprob)) expect(lp.logprob, `${what}: logprob ${i} not asked for`).toBeNaN();
    else expect(Math.abs(lp.logprob - h.logprob), `${what}: logprob ${i}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(h.logprob)));
    expect(lp.topLogprobs?.map((x) => x.token), `${what}: top ${i}`).toEqual(h.topLogprobs?.map((x) => x.token));
    lp.topLogprobs?.forEach((x, j) => expect(Math.abs(x.logprob - h.topLogprobs![j].logprob)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(x.logprob))));
  });
}

describe('Model.generate: device sampling = host sampling (CPU backend)', () => {
  let onDevice: Model;
  let onHost: Model;
  let paths: { device: { logits: number; sampled: number }; host: { logits: number; sampled: number } };
  beforeAll(async () => {
    onDevice = await loadModel(fixture('llama3'), { threads: 2 });
    onHost = await loadModel(fixture('llama3'), { threads: 2, deviceSampling: false });
    paths = { device: countPaths(onDevice), host: countPaths(onHost) };
  });
  afterAll(() => {
    onDevice.dispose();
    onHost.dispose();
  });

  it('one generation at a time: same tokens and logprobs for every policy', async () => {
    const prompts = expectedOf('llama3');
    for (const [k, opts] of POLICIES.entries()) {
      const promptIds = prompts[k % prompts.length].ids;
      const host = await onHost.complete({ promptIds }, opts);
      const dev = await onDevice.complete({ promptIds }, opts);
      expectSameCompletion(dev, host, `policy ${k}`);
      if (opts.temperature === 0) expect(dev.tokenIds.slice(0, 12)).toEqual(prompts[k % prompts.length].greedy.slice(0, 12));
    }
    expect(paths.device.logits).toBe(0);
    expect(paths.device.sampled).toBeGreaterThan(50);
    expect(paths.host.sampled).toBe(0);
    expect(paths.host.logits).toBeGreaterThan(50);
  });

  it('every policy in flight at once (shared steps, one row each): same tokens as on the host', async () => {
    const prompts = expectedOf('llama3');
    const run = (m: Model) => Promise.all(POLICIES.map((opts, k) => m.complete({ promptIds: prompts[(k + 1) % prompts.length].ids }, { ...opts, seed: (opts.seed ?? 0) + 10 })));
    const [dev, host] = [await run(onDevice), await run(onHost)];
    dev.forEach((d, k) => expectSameCompletion(d, host[k], `policy ${k} (batched)`));
    // the seeds matter: another seed gives another sampled sequence somewhere
    const other = await Promise.all(POLICIES.map((opts, k) => onDevice.complete({ promptIds: prompts[(k + 1) % prompts.length].ids }, { ...opts, seed: (opts.seed ?? 0) + 11 })));
    expect(other.map((c) => c.tokenIds)).not.toEqual(dev.map((c) => c.tokenIds));
    expect(onDevice.engine.blocks.usedPages).toBe(0);
  });
});
