import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, Model, modelSamplingDefaults } from '../../lib/api/index.js';
import { loadEngine } from '../../lib/hf/index.js';
import { greedyGenerate } from '../../lib/engine/greedy.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { Engine } from '../../lib/engine/engine.js';
import { BUILTIN_SIZES } from '../../lib/model/builtin.js';
import { llamaConfig } from '../../lib/model/config.js';
import { randomWeights } from '../../lib/model/random-weights.js';
import { presetPlan } from '../../lib/plan/presets.js';
import { drain, expectedOf, fixture, idsOf, textOf, withoutTokenizer } from './helpers.js';

describe('Model.generate on an HF fixture (llama3)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixture('llama3'), { threads: 2 });
  });
  afterAll(() => model.dispose());

  it('greedy generation equals greedyGenerate on the engine and HF transformers', async () => {
    const prompts = expectedOf('llama3');
    const engine = await loadEngine(fixture('llama3'), { threads: 2 });
    const ref = await greedyGenerate(engine, prompts.map((p) => p.ids), { maxNewTokens: 32 });
    engine.dispose();
    for (const [i, p] of prompts.entries()) {
      const chunks = await drain(model.generate({ promptIds: p.ids }, { temperature: 0, maxTokens: 32 }));
      expect(idsOf(chunks)).toEqual(ref.tokens[i]);
      expect(idsOf(chunks)).toEqual(p.greedy);
      const last = chunks.at(-1)!;
      expect(last.finishReason).toBe('length');
      expect(last.usage).toEqual({ promptTokens: p.ids.length, completionTokens: 32 });
      expect(last.timing!.prefillMs).toBeGreaterThanOrEqual(0);
      expect(last.timing!.tokensPerSecond).toBeGreaterThan(0);
      // one chunk per token; only the last carries the finish reason
      expect(chunks).toHaveLength(32);
      expect(chunks.slice(0, -1).every((c) => c.finishReason === undefined)).toBe(true);
    }
  });

  it('prefill in chunks gives the same tokens as a whole-prompt prefill', async () => {
    const p = expectedOf('llama3')[2];
    const chunked = await loadModel(fixture('llama3'), { threads: 2, prefillChunk: 5 });
    try {
      expect((await chunked.complete({ promptIds: p.ids }, { temperature: 0, maxTokens: 32 })).tokenIds).toEqual(p.greedy);
    } finally {
      chunked.dispose();
    }
  });

  it('text prompts are tokenized with special tokens; the text is the decode of the ids', async () => {
    const r = await model.complete('hello world', { temperature: 0, maxTokens: 20 });
    expect(model.encode('hello world')[0]).toBe(model.tokenizer!.bosTokenId);
    expect(r.text).toBe(model.tokenizer!.decode(r.tokenIds, { skipSpecialTokens: true }));
    expect(r.usage.promptTokens).toBe(model.encode('hello world').length);
  });

  it('chat messages go through the chat template with the generation prompt', async () => {
    const messages = [{ role: 'user', content: 'hi there' }];
    const ids = model.encode(messages);
    expect(ids).toEqual(model.tokenizer!.encodeChat(messages, { addGenerationPrompt: true }));
    const r = await model.complete(messages, { temperature: 0, maxTokens: 8 });
    expect(r.tokenIds).toEqual((await model.complete({ promptIds: ids }, { temperature: 0, maxTokens: 8 })).tokenIds);
  });

  it('a stop string ends the text right before it (OpenAI semantics)', async () => {
    const full = await model.complete('the cat', { temperature: 0, maxTokens: 32 });
    const text = full.text;
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
    expect(stop.length).toBe(3);
    const r = await model.complete('the cat', { temperature: 0, maxTokens: 32, stop: [stop] });
    expect(r.finishReason).toBe('stop');
    expect(r.stopReason).toBe(stop);
    expect(r.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(r.tokenIds).toEqual(full.tokenIds.slice(0, r.tokenIds.length));
  });

  it('a stop token id ends generation; the id is reported, its text is not', async () => {
    const p = expectedOf('llama3')[0];
    const stopId = p.greedy[5];
    const r = await model.complete({ promptIds: p.ids }, { temperature: 0, maxTokens: 32, stopTokenIds: [stopId] });
    const at = p.greedy.indexOf(stopId);
    expect(r.tokenIds).toEqual(p.greedy.slice(0, at + 1));
    expect(r).toMatchObject({ finishReason: 'stop', stopReason: stopId });
  });

  it('EOS ids from the model stop generation unless ignoreEos', async () => {
    expect(model.eosTokenIds).toContain(2); // config/generation_config eos_token_id
    const p = expectedOf('llama3')[1];
    const eos = p.greedy[3];
    const engine = await loadEngine(fixture('llama3'), { threads: 2 });
    await using m = new Model(engine, { generation: { eosTokenIds: [eos] } });
    const stopped = await m.complete({ promptIds: p.ids }, { maxTokens: 32 });
    expect(stopped.tokenIds).toEqual(p.greedy.slice(0, p.greedy.indexOf(eos) + 1));
    expect(stopped).toMatchObject({ finishReason: 'stop', stopReason: eos });
    expect((await m.complete({ promptIds: p.ids }, { maxTokens: 32, ignoreEos: true })).tokenIds).toEqual(p.greedy);
  });

  it('sampling defaults follow generation_config as HF reads it (greedy unless do_sample)', () => {
    expect(modelSamplingDefaults({ eosTokenIds: [], temperature: 0.6, topP: 0.9 })).toEqual({ temperature: 0 });
    expect(modelSamplingDefaults({ eosTokenIds: [], doSample: true, temperature: 0.6, topP: 0.9, maxNewTokens: 9, repetitionPenalty: 1.1 })).toEqual({
      temperature: 0.6,
      topK: 50,
      topP: 0.9,
      maxTokens: 9,
      repetitionPenalty: 1.1,
    });
    expect(model.samplingDefaults).toEqual({ temperature: 0 });
  });

  it('logprobs: one entry per token, the greedy token the most likely', async () => {
    const chunks = await drain(model.generate('abc', { temperature: 0, maxTokens: 5, logprobs: true, topLogprobs: 3 }));
    for (const c of chunks) {
      expect(c.logprobs).toHaveLength(c.tokenIds.length);
      const lp = c.logprobs![0];
      expect(lp.token).toBe(c.tokenIds[0]);
      expect(lp.logprob).toBeLessThanOrEqual(0);
      expect(lp.topLogprobs![0]).toEqual({ token: lp.token, logprob: lp.logprob });
      expect(lp.topLogprobs).toHaveLength(3);
    }
  });

  it('the same seed reproduces a sampled generation', async () => {
    const opts = { temperature: 1.2, topP: 0.95, seed: 1234, maxTokens: 24 };
    const a = await model.complete('seeded', opts);
    const b = await model.complete('seeded', opts);
    const c = await model.complete('seeded', { ...opts, seed: 99 });
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.tokenIds).not.toEqual(c.tokenIds);
  });

  it('invalid options are rejected at the call, naming the parameter', () => {
    expect(() => model.generate('x', { temperature: -1 })).toThrow(/^temperature must be a finite number >= 0, got -1$/);
    expect(() => model.generate('x', { topLogprobs: 50 })).toThrow(/topLogprobs/);
    expect(() => model.generate({ promptIds: [1, 300] })).toThrow(/promptIds\[1\] must be a token id in \[0, 300\), got 300/);
    expect(() => model.generate({ promptIds: [] })).toThrow(/prompt is empty/);
    expect(() => model.generate(42 as unknown as string)).toThrow(/input must be/);
  });
});

describe('a model directory without a tokenizer', () => {
  it('takes prompt ids, gives empty text, and rejects text prompts and stop strings', async () => {
    const { dir, cleanup } = withoutTokenizer('qwen3');
    const model = await loadModel(dir, { threads: 2 });
    try {
      expect(model.tokenizer).toBeUndefined();
      const p = expectedOf('qwen3')[0];
      const chunks = await drain(model.generate({ promptIds: p.ids }, { temperature: 0, maxTokens: 32 }));
      expect(idsOf(chunks)).toEqual(p.greedy);
      expect(textOf(chunks)).toBe('');
      expect(() => model.generate('hello')).toThrow(/no tokenizer/);
      expect(() => model.generate({ promptIds: p.ids }, { stop: ['x'] })).toThrow(/stop strings need a tokenizer/);
    } finally {
      model.dispose();
      cleanup();
    }
  });
});

describe('a model whose vocabulary is larger than its tokenizer (padded embeddings)', () => {
  it('ids past the tokenizer have no text and do not break the stream', async () => {
    const tokenizer = await Tokenizer.fromDir(fixture('llama3'));
    const cfg = llamaConfig({ ...BUILTIN_SIZES.tiny, vocabSize: tokenizer.vocabSize * 4 });
    const plan = presetPlan('standard', cfg.numLayers);
    const engine = Engine.create(cfg, plan, randomWeights(cfg, plan, { seed: 3, dtype: 'f32' }), { threads: 2, kvPages: 256 });
    await using model = new Model(engine, { tokenizer });
    const r = await model.complete('hello', { temperature: 1, seed: 2, maxTokens: 24 });
    expect(r.tokenIds.some((t) => t >= tokenizer.vocabSize)).toBe(true);
    expect(r.text).toBe(tokenizer.decode(r.tokenIds.filter((t) => t < tokenizer.vocabSize), { skipSpecialTokens: true }));
  });
});
