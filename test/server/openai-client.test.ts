import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type OpenAI from 'openai';
import type { Model } from '../../lib/api/index.js';
import type { MixattnServer } from '../../lib/server/index.js';
import { expectedOf } from '../api/helpers.js';
import { MODEL_NAME, client, serveFixture, until } from './helpers.js';

describe('the official openai client against mixattn serve (llama3 fixture)', () => {
  let server: MixattnServer;
  let model: Model;
  let openai: OpenAI;
  beforeAll(async () => {
    ({ server, model } = await serveFixture('llama3'));
    openai = client(server);
  });
  afterAll(() => server.close());

  const messages = [
    { role: 'system' as const, content: 'be brief' },
    { role: 'user' as const, content: 'hello there' },
  ];

  it('lists the served model', async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL_NAME]);
    expect(await openai.models.retrieve(MODEL_NAME)).toMatchObject({ id: MODEL_NAME, object: 'model', owned_by: 'mixattn' });
  });

  it('completions: the text and usage of Model.complete, streamed or not', async () => {
    const ref = await model.complete('the cat sat', { temperature: 0, maxTokens: 12 });
    const r = await openai.completions.create({ model: MODEL_NAME, prompt: 'the cat sat', max_tokens: 12, temperature: 0 });
    expect(r).toMatchObject({ object: 'text_completion', model: MODEL_NAME });
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]).toMatchObject({ index: 0, text: ref.text, finish_reason: ref.finishReason, logprobs: null });
    expect(r.usage).toEqual({ prompt_tokens: ref.usage.promptTokens, completion_tokens: ref.usage.completionTokens, total_tokens: ref.usage.promptTokens + ref.usage.completionTokens });

    const stream = await openai.completions.create({ model: MODEL_NAME, prompt: 'the cat sat', max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(ref.text);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(r.usage);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe(ref.finishReason);
    expect(chunks.slice(0, -2).every((c) => c.choices[0].finish_reason === null)).toBe(true);
  });

  it('completions: a token-id prompt continues as HF transformers does (greedy)', async () => {
    const p = expectedOf('llama3')[1];
    const r = await openai.completions.create({ model: MODEL_NAME, prompt: p.ids, max_tokens: 10, temperature: 0, logprobs: 0 });
    expect(r.usage!.prompt_tokens).toBe(p.ids.length);
    // the greedy tokens, as their texts (logprobs report one entry per token)
    const texts = p.greedy.slice(0, r.usage!.completion_tokens).map((t) => model.tokenizer!.decode([t]));
    expect(r.choices[0].logprobs!.tokens).toEqual(texts);
  });

  it('chat: the assistant message of Model.complete on the messages, streamed or not', async () => {
    const ref = await model.complete(messages, { temperature: 0, maxTokens: 16 });
    const r = await openai.chat.completions.create({ model: MODEL_NAME, messages, max_completion_tokens: 16, temperature: 0 });
    expect(r).toMatchObject({ object: 'chat.completion', model: MODEL_NAME });
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant', content: ref.text }, finish_reason: ref.finishReason, logprobs: null });
    expect(r.usage).toMatchObject({ prompt_tokens: ref.usage.promptTokens, completion_tokens: ref.usage.completionTokens });

    const stream = await openai.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].object).toBe('chat.completion.chunk');
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(ref.text);
    const finish = chunks.at(-2)!.choices[0];
    expect(finish).toMatchObject({ delta: {}, finish_reason: ref.finishReason });
    expect(chunks.at(-1)!.usage).toEqual(r.usage);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('stop: the text ends right before the stop string, finish_reason stop', async () => {
    const full = await openai.completions.create({ model: MODEL_NAME, prompt: 'once upon', max_tokens: 32, temperature: 0 });
    const text = full.choices[0].text;
    const at = Math.floor(text.length / 2);
    const stop = text.slice(at, at + 2);
    const r = await openai.completions.create({ model: MODEL_NAME, prompt: 'once upon', max_tokens: 32, temperature: 0, stop: [stop, 'never-appears'] });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.choices[0].text).toBe(text.slice(0, text.indexOf(stop)));
    const chat = await openai.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 32, temperature: 0, stop: 'zzzz' });
    expect(['stop', 'length']).toContain(chat.choices[0].finish_reason);
  });

  it('seed: the same seed samples the same text; seeds differ somewhere', async () => {
    const ask = (seed: number) =>
      openai.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 24, temperature: 1.2, top_p: 0.95, seed }).then((r) => r.choices[0].message.content);
    const a = await ask(42);
    expect(await ask(42)).toBe(a);
    const others = await Promise.all([1, 2, 3, 4].map(ask));
    expect(others.some((t) => t !== a)).toBe(true);
  });

  it('extensions: top_k, min_p, repetition_penalty, presence/frequency penalties are accepted', async () => {
    const body = { model: MODEL_NAME, prompt: 'abc', max_tokens: 8, temperature: 0.7, seed: 3, top_k: 20, min_p: 0.05, repetition_penalty: 1.1, presence_penalty: 0.5, frequency_penalty: 0.5 };
    const r = await openai.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('logprobs: completions (top-n maps) and chat (entries with bytes) in OpenAI shapes', async () => {
    const c = await openai.completions.create({ model: MODEL_NAME, prompt: 'hello', max_tokens: 6, temperature: 0, logprobs: 3 });
    const lp = c.choices[0].logprobs!;
    const n = c.usage!.completion_tokens;
    expect(lp.tokens).toHaveLength(n);
    expect(lp.token_logprobs).toHaveLength(n);
    expect(lp.text_offset).toHaveLength(n);
    expect(lp.top_logprobs).toHaveLength(n);
    lp.top_logprobs!.forEach((top, i) => {
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
      expect(Object.keys(top).length).toBeLessThanOrEqual(4);
      // greedy: the chosen token is the most likely one
      expect(lp.token_logprobs![i]).toBeCloseTo(Math.max(...Object.values(top)), 6);
      expect(lp.token_logprobs![i]).toBeLessThanOrEqual(0);
    });
    expect(lp.text_offset![0]).toBe(0);

    const r = await openai.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(r.usage!.completion_tokens);
    for (const e of content) {
      expect(typeof e.token).toBe('string');
      expect(e.bytes).toEqual([...Buffer.from(e.token, 'utf8')]);
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.logprob).toBeCloseTo(e.top_logprobs[0].logprob, 6);
      expect(e.top_logprobs[0].logprob).toBeGreaterThanOrEqual(e.top_logprobs[1].logprob);
    }
    // streamed: the same entries, spread over the chunks
    const stream = await openai.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
    const streamed = [];
    for await (const ch of stream) streamed.push(...(ch.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
  });

  it('an abort in the middle of a stream frees the request: used KV pages return to 0', async () => {
    const ac = new AbortController();
    const body = { model: MODEL_NAME, messages, max_tokens: 200, temperature: 0, stream: true as const, ignore_eos: true };
    const stream = await openai.chat.completions.create(body, { signal: ac.signal });
    let n = 0;
    let usedMid = 0;
    for await (const _ of stream) {
      if (++n === 4) {
        usedMid = model.engine.blocks.usedPages;
        ac.abort();
      }
    }
    expect(usedMid).toBeGreaterThan(0);
    expect(await until(() => model.engine.blocks.usedPages === 0 && server.activeGenerations === 0)).toBe(true);
    expect(model.engine.blocks.liveSequences).toBe(0);
    expect(server.metrics.finished.get({ reason: 'abort' })).toBeGreaterThanOrEqual(1);
  });
});
