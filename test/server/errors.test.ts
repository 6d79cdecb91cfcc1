import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { Model } from '../../lib/api/index.js';
import type { MixattnServer } from '../../lib/server/index.js';
import { aroundSteps } from '../api/helpers.js';
import { MODEL_NAME, client, serveFixture } from './helpers.js';

/** POST JSON (or raw text) and return status, headers and the parsed body. */
async function post(server: MixattnServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as { error: { message: string; type: string; param: string | null; code: string | null } } };
}

describe('errors in OpenAI JSON with the right status', () => {
  let server: MixattnServer;
  let model: Model;
  let openai: OpenAI;
  beforeAll(async () => {
    ({ server, model } = await serveFixture('llama3', { apiKey: 'sekret', maxModelLen: 64, maxTokensLimit: 40 }));
    openai = client(server, 'sekret');
  });
  afterAll(() => server.close());
  const messages = [{ role: 'user' as const, content: 'hi' }];

  it('401 for a wrong or missing key on /v1/*; /health and /metrics stay open', async () => {
    const bad = client(server, 'wrong');
    const e = await bad.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 2 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(e).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'invalid_request_error' });
    const missing = await fetch(`${server.url}/v1/models`);
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toMatch(/Bearer/);
    // unknown /v1 routes reveal nothing without the key
    expect((await fetch(`${server.url}/v1/nope`)).status).toBe(401);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
    expect((await openai.models.list()).data).toHaveLength(1);
  });

  it('400 naming the parameter (the client raises BadRequestError with .param)', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: -1 }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ top_k: 1.5 }, 'top_k'],
      [{ min_p: 2 }, 'min_p'],
      [{ repetition_penalty: 0 }, 'repetition_penalty'],
      [{ presence_penalty: 3 }, 'presence_penalty'],
      [{ frequency_penalty: 'x' }, 'frequency_penalty'],
      [{ seed: -5 }, 'seed'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ max_completion_tokens: 2.5 }, 'max_completion_tokens'],
      [{ n: 2 }, 'n'],
      [{ stop: [1] }, 'stop'],
      [{ stream: 'yes' }, 'stream'],
      [{ stream_options: { include_usage: true } }, 'stream_options'],
      [{ logprobs: 'x' }, 'logprobs'],
      [{ top_logprobs: 3 }, 'top_logprobs'],
      [{ logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
      [{ stop_token_ids: [100000] }, 'stop_token_ids'],
      [{ tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ content: 'no role' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages'], // the template raises
    ];
    for (const [extra, param] of cases) {
      const e = await openai.chat.completions.create({ model: MODEL_NAME, messages, max_tokens: 4, ...extra } as never).catch((x: unknown) => x);
      expect(e, JSON.stringify(extra)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((e as InstanceType<typeof OpenAI.BadRequestError>).param, JSON.stringify(extra)).toBe(param);
      expect((e as InstanceType<typeof OpenAI.BadRequestError>).message).toContain(param.replace(/\[.*$/, ''));
    }
    const c = await openai.completions.create({ model: MODEL_NAME, prompt: 'x', logprobs: 21 }).catch((x: unknown) => x);
    expect(c).toMatchObject({ status: 400, param: 'logprobs' });
    const ids = await openai.completions.create({ model: MODEL_NAME, prompt: [1, 2, 999999] }).catch((x: unknown) => x);
    expect(ids).toMatchObject({ status: 400, param: 'prompt' });
    const batch = await openai.completions.create({ model: MODEL_NAME, prompt: ['a', 'b'] }).catch((x: unknown) => x);
    expect(batch).toMatchObject({ status: 400, param: 'prompt' });
    const echo = await openai.completions.create({ model: MODEL_NAME, prompt: 'a', echo: true }).catch((x: unknown) => x);
    expect(echo).toMatchObject({ status: 400, param: 'echo' });
  });

  it('400 for a prompt longer than --max-model-len and a max_tokens too large', async () => {
    const long = await openai.completions.create({ model: MODEL_NAME, prompt: Array.from({ length: 70 }, (_, i) => 10 + i) }).catch((x: unknown) => x);
    expect(long).toMatchObject({ status: 400, param: 'prompt', code: 'context_length_exceeded' });
    expect((long as Error).message).toMatch(/maximum context length is 64 tokens, but the prompt has 70 tokens/);
    const overLimit = await openai.completions.create({ model: MODEL_NAME, prompt: 'a', max_tokens: 41 }).catch((x: unknown) => x);
    expect(overLimit).toMatchObject({ status: 400, param: 'max_tokens' });
    expect((overLimit as Error).message).toMatch(/at most 40/);
    const overCtx = await openai.completions.create({ model: MODEL_NAME, prompt: Array.from({ length: 30 }, () => 10), max_tokens: 40 }).catch((x: unknown) => x);
    expect(overCtx).toMatchObject({ status: 400, param: 'max_tokens', code: 'context_length_exceeded' });
    // no max_tokens: the default fits what is left of the context
    const fits = await openai.chat.completions.create({ model: MODEL_NAME, messages, temperature: 0, ignore_eos: true } as never);
    expect((fits as OpenAI.ChatCompletion).usage!.total_tokens).toBeLessThanOrEqual(64);
  });

  it('404 for an unknown model or route, 405 for a wrong method', async () => {
    const e = await openai.completions.create({ model: 'gpt-17', prompt: 'x' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(await openai.models.retrieve('gpt-17').catch((x: unknown) => x)).toBeInstanceOf(OpenAI.NotFoundError);
    const auth = { Authorization: 'Bearer sekret' };
    const route = await post(server, '/v1/engines', {}, auth);
    expect(route.status).toBe(404);
    expect(route.body.error.code).toBe('unknown_url');
    const wrong = await fetch(`${server.url}/v1/completions`, { headers: auth });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect(((await wrong.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
  });

  it('413 for a body over the limit (declared or streamed); 400 for invalid JSON', async () => {
    const big = JSON.stringify({ model: MODEL_NAME, prompt: 'x'.repeat(2 * 1024 * 1024) });
    const r = await post(server, '/v1/completions', big, { Authorization: 'Bearer sekret' });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('request_too_large');
    // chunked (no Content-Length): counted as it arrives
    const parts = [big.slice(0, 600_000), big.slice(600_000)];
    const chunked = new ReadableStream({ pull: (c) => (parts.length ? c.enqueue(new TextEncoder().encode(parts.shift()!)) : c.close()) });
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: chunked, duplex: 'half', headers: { Authorization: 'Bearer sekret' } } as RequestInit);
    expect(res.status).toBe(413);
    const bad = await post(server, '/v1/completions', '{"prompt": ', { Authorization: 'Bearer sekret' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_json');
    // the server still serves
    expect((await openai.completions.create({ model: MODEL_NAME, prompt: 'x', max_tokens: 2 })).choices).toHaveLength(1);
  });

  it('500 never leaks internals: a failed step becomes a generic error (JSON, or an SSE error event)', async () => {
    const restore = aroundSteps(model.engine, () => Promise.reject(new Error('secret native detail at 0xdeadbeef')));
    try {
      const r = await post(server, '/v1/completions', { model: MODEL_NAME, prompt: 'x', max_tokens: 3 }, { Authorization: 'Bearer sekret' });
      expect(r.status).toBe(500);
      expect(r.body.error.type).toBe('server_error');
      expect(r.body.error.message).not.toMatch(/secret|0xdead/);
      const stream = await openai.completions.create({ model: MODEL_NAME, prompt: 'x', max_tokens: 3, stream: true });
      const e = await (async () => {
        for await (const _ of stream);
      })().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.APIError);
      expect((e as Error).message).not.toMatch(/secret|0xdead/);
    } finally {
      restore();
    }
    expect(model.engine.blocks.usedPages).toBe(0);
  });
});
