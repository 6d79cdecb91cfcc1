import { describe, expect, it } from 'vitest';
import { resolveSamplingParams, SamplingParamError, validateSamplingParams, type SamplingParams } from '../../lib/sampling/index.js';

describe('validateSamplingParams', () => {
  const bad: [SamplingParams, RegExp][] = [
    [{ temperature: -1 }, /^temperature must be a finite number >= 0, got -1$/],
    [{ temperature: NaN }, /^temperature .* got NaN$/],
    [{ topK: 1.5 }, /^topK must be an integer >= 0/],
    [{ topK: -1 }, /^topK /],
    [{ topP: 0 }, /^topP must be a number in \(0, 1\]/],
    [{ topP: 1.1 }, /^topP /],
    [{ minP: -0.1 }, /^minP /],
    [{ minP: 2 }, /^minP /],
    [{ repetitionPenalty: 0 }, /^repetitionPenalty must be a finite number > 0/],
    [{ presencePenalty: 3 }, /^presencePenalty must be a number in \[-2, 2\], got 3$/],
    [{ frequencyPenalty: -2.5 }, /^frequencyPenalty /],
    [{ seed: -1 }, /^seed must be a non-negative safe integer, got -1$/],
    [{ seed: 0.5 }, /^seed /],
    [{ maxTokens: 0 }, /^maxTokens must be an integer >= 1, got 0$/],
    [{ stop: 'x' as unknown as string[] }, /^stop must be an array of strings, got "x"$/],
    [{ stop: ['ok', ''] }, /^stop\[1\] must be a non-empty string, got ""$/],
    [{ stopTokenIds: [1, -2] }, /^stopTokenIds\[1\] must be an integer >= 0, got -2$/],
    [{ logprobs: 1 as unknown as boolean }, /^logprobs must be a boolean, got 1$/],
    [{ topLogprobs: 21 }, /^topLogprobs must be an integer in \[0, 20\], got 21$/],
    [{ ignoreEos: 'yes' as unknown as boolean }, /^ignoreEos /],
  ];
  it.each(bad)('%o is rejected with a message naming the parameter', (p, msg) => {
    expect(() => validateSamplingParams(p)).toThrow(msg);
    try {
      validateSamplingParams(p);
    } catch (e) {
      expect(e).toBeInstanceOf(SamplingParamError);
      expect(msg.source).toContain((e as SamplingParamError).param.replace(/[[\]]/g, (c) => `\\${c}`));
    }
  });

  it('bounds stop token ids by the vocabulary when it is known', () => {
    expect(() => validateSamplingParams({ stopTokenIds: [99] }, 99)).toThrow(/^stopTokenIds\[0\] must be an integer in \[0, 99\), got 99$/);
    expect(() => validateSamplingParams({ stopTokenIds: [98] }, 99)).not.toThrow();
  });

  it('accepts the neutral values and the edges', () => {
    expect(() =>
      validateSamplingParams({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: -2, frequencyPenalty: 2, seed: 0, topLogprobs: 20 }),
    ).not.toThrow();
  });

  it('resolves the caller over the model defaults over the neutral values', () => {
    const r = resolveSamplingParams({ topP: 0.5 }, { temperature: 0.6, topP: 0.9, maxTokens: 7 });
    expect(r).toMatchObject({ temperature: 0.6, topP: 0.5, topK: 0, maxTokens: 7, repetitionPenalty: 1, stop: [], seed: undefined });
    expect(() => resolveSamplingParams({}, { temperature: -3 })).toThrow(/temperature/);
  });
});
