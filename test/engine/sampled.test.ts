/**
 * Engine.stepSampled (Backend::sample after the step, only tokens and logprobs back): the same
 * tokens a host Sampler picks from Engine.step's logits for the same seeds, with the KV
 * committed as by step(); bad policies fail naming the row before anything runs.
 */
import { describe, expect, it } from 'vitest';
import type { StepEntry } from '../../lib/engine/engine.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { Sampler, UNREAD_ROW } from '../../lib/sampling/index.js';
import { llamaLike, tokensOf } from '../reference/helpers.js';
import { makeEngine } from './harness.js';

const cfg = llamaLike(2, { vocabSize: 500, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2, headDim: 8 });
const plan = presetPlan('ma', 2, { window: 8 });

describe('Engine.stepSampled', () => {
  it('equals host sampling of step()’s logits, step after step, prefill chunks included', async () => {
    using byLogits = makeEngine(cfg, plan, { seed: 2 });
    using onDevice = makeEngine(cfg, plan, { seed: 2 });
    const params = [
      { temperature: 0.8, topK: 30, topP: 0.9, seed: 5, logprobs: true, topLogprobs: 4, repetitionPenalty: 1.2 },
      { temperature: 0, seed: 6, logprobs: true, presencePenalty: 0.5 },
      { temperature: 1.5, minP: 0.05, seed: 7, frequencyPenalty: 0.3 },
    ];
    const prompts = params.map((_, i) => tokensOf(4 + 5 * i, cfg.vocabSize, i));
    const host = params.map((p, i) => new Sampler(p, { vocabSize: cfg.vocabSize, promptIds: prompts[i] }));
    const dev = params.map((p, i) => new Sampler(p, { vocabSize: cfg.vocabSize, promptIds: prompts[i] }));
    const a = params.map(() => byLogits.addSequence());
    const b = params.map(() => onDevice.addSequence());
    // step 0: the first prompt in two chunks (its first chunk's row is read by nobody)
    let next: number[][] = [prompts[0].slice(0, 2), prompts[1], prompts[2]];
    let reads = [false, true, true];
    for (let step = 0; step < 10; step++) {
      const entries = (seqs: number[]): StepEntry[] => seqs.map((seq, i) => ({ seq, tokens: next[i] }));
      const logits = await byLogits.step(entries(a));
      const sampled = await onDevice.stepSampled(entries(b), dev.map((s, i) => (reads[i] ? s.deviceSampling() : undefined)));
      const tokens: number[][] = [];
      params.forEach((_, i) => {
        if (!reads[i]) {
          tokens.push(prompts[0].slice(2));
          return;
        }
        const h = host[i].sample(logits[i]);
        const d = dev[i].accept(sampled[i]);
        expect(d.token, `step ${step} seq ${i}`).toBe(h.token);
        if (h.logprob !== undefined) expect(Math.abs(d.logprob! - h.logprob)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(h.logprob)));
        expect(d.topLogprobs?.map((x) => x.token)).toEqual(h.topLogprobs?.map((x) => x.token));
        tokens.push([d.token]);
      });
      next = tokens;
      reads = [true, true, true];
      b.forEach((s, i) => expect(onDevice.blocks.length(s)).toBe(byLogits.blocks.length(a[i])));
    }
  });

  it('rejects bad calls before running anything', async () => {
    using engine = makeEngine(cfg, plan, { seed: 2 });
    const s = engine.addSequence();
    const e = [{ seq: s, tokens: [1, 2, 3] }];
    await expect(engine.stepSampled(e, [])).rejects.toThrow(/1 entries/);
    await expect(engine.stepSampled([{ ...e[0], logits: 'all' }], [UNREAD_ROW])).rejects.toThrow(/entries\[0\] asks for all rows/);
    await expect(engine.stepSampled(e, [{ ...UNREAD_ROW, topK: -1 }])).rejects.toThrow(/topK/);
    await expect(engine.stepSampled(e, [{ ...UNREAD_ROW, minP: 2 }])).rejects.toThrow(/rows\[0\]\.minP = 2 must be in \[0, 1\]/);
    await expect(engine.stepSampled(e, [{ ...UNREAD_ROW, penalties: Int32Array.of(500, 1) }])).rejects.toThrow(/rows\[0\]\.penalties\[0\]: token id 500 is outside \[0, 500\)/);
    expect(engine.blocks.length(s)).toBe(0);
    // the engine still works
    const [r] = await engine.stepSampled(e, [UNREAD_ROW]);
    expect(r.token).toBeGreaterThanOrEqual(0);
    expect(engine.blocks.length(s)).toBe(3);
  });
});
