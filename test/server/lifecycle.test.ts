import { describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { Model } from '../../lib/api/index.js';
import { aroundSteps } from '../api/helpers.js';
import { MODEL_NAME, client, rawStream, serveFixture, until } from './helpers.js';

/** Holds every engine step until release(): requests pile up in the queue meanwhile. */
function gateSteps(model: Model) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let entered = false;
  const restore = aroundSteps(model.engine, async (_entries, run) => {
    entered = true;
    await gate;
    return run();
  });
  return { entered: () => entered, release: () => open(), restore };
}

/** Every metric line: name{labels} value, each family introduced by HELP and TYPE. */
function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.trimEnd().split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-z_:][a-z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram']).toContain(meta[3]);
        typed.add(meta[2]);
      }
      continue;
    }
    const m = /^([a-z_:][a-z0-9_:]*)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf)$/.exec(line);
    expect(m, line).not.toBeNull();
    expect(typed.has(m![1].replace(/_(bucket|sum|count)$/, '')) || typed.has(m![1]), line).toBe(true);
    values.set(`${m![1]}${m![2] ?? ''}`, Number(m![3]));
  }
  return values;
}

describe('queue, health, metrics, shutdown', () => {
  it('a full queue answers 429; /metrics shows it, the queue, KV pages and TTFT in Prometheus format', async () => {
    const { server, model } = await serveFixture('llama3', { maxQueue: 2 });
    const url = `${server.url}/v1/completions`;
    const body = (p: string) => ({ model: MODEL_NAME, prompt: p, max_tokens: 6, temperature: 0, stream: true, ignore_eos: true });
    const gate = gateSteps(model);
    try {
      const a = rawStream(url, body('a'));
      expect(await until(gate.entered)).toBe(true); // a is running, its first step held
      const b = rawStream(url, body('b'));
      expect(await until(() => server.activeGenerations === 2)).toBe(true);
      const c = rawStream(url, body('c'));
      expect(await until(() => server.activeGenerations === 3)).toBe(true); // b and c wait
      const full = await client(server).completions.create({ model: MODEL_NAME, prompt: 'd', max_tokens: 2 }).catch((x: unknown) => x);
      expect(full).toBeInstanceOf(OpenAI.RateLimitError);
      expect(full).toMatchObject({ status: 429, code: 'queue_full' });
      const mid = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
      expect(mid.get('mixattn_sequences_running')).toBe(1);
      expect(mid.get('mixattn_sequences_waiting')).toBe(2);
      expect(mid.get('mixattn_http_requests_in_flight')).toBeGreaterThanOrEqual(3);
      gate.release();
      for (const r of await Promise.all([a, b, c])) {
        expect(r.status).toBe(200);
        expect(r.events.at(-1)).toBe('[DONE]');
      }
    } finally {
      gate.release();
      gate.restore();
    }
    expect(await until(() => server.activeGenerations === 0 && model.engine.blocks.usedPages === 0)).toBe(true);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const res = await fetch(`${server.url}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const m = parseMetrics(await res.text());
    expect(m.get('mixattn_http_requests_total{route="/v1/completions",status="200"}')).toBe(3);
    expect(m.get('mixattn_http_requests_total{route="/v1/completions",status="429"}')).toBe(1);
    expect(m.get('mixattn_time_to_first_token_seconds_count')).toBe(3);
    expect(m.get('mixattn_time_to_first_token_seconds_bucket{le="+Inf"}')).toBe(3);
    expect(m.get('mixattn_generation_tokens_total')).toBe(18);
    expect(m.get('mixattn_generations_finished_total{reason="length"}')).toBe(3);
    expect(m.get('mixattn_kv_pages_total')).toBe(model.engine.blocks.numPages);
    expect(m.get('mixattn_kv_pages_used')).toBe(0);
    expect(m.get('mixattn_kv_pages_free')! + m.get('mixattn_kv_pages_cached')!).toBe(model.engine.blocks.numPages);
    expect(m.get('mixattn_kv_class_pages_used{class="0",window="0"}')).toBe(0);
    expect(m.get('mixattn_sequences_running')).toBe(0);
    expect(m.get('mixattn_scheduler_steps_total')).toBeGreaterThan(0);
    expect(m.get('mixattn_tokens_per_second{kind="generation"}')).toBeGreaterThan(0);
    await server.close();
  });

  it('close() lets a generation in flight finish, then stops listening and disposes the model', async () => {
    const { server, model } = await serveFixture('llama3');
    const url = `${server.url}/v1/chat/completions`;
    let closing: Promise<void> | undefined;
    const r = await rawStream(url, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 24, temperature: 0, stream: true, ignore_eos: true }, undefined, (n) => {
      if (n === 3) closing = server.close(10_000);
    });
    expect(r.events.at(-1)).toBe('[DONE]');
    expect((r.events.at(-2) as { choices: { finish_reason: string }[] }).choices[0].finish_reason).toBe('length');
    await closing;
    expect(model.disposed).toBe(true);
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });

  it('close() aborts what outlives the grace period: the stream ends with an error event, not [DONE]', async () => {
    const { server, model } = await serveFixture('llama3', { maxModelLen: 4000 });
    const url = `${server.url}/v1/completions`;
    let closing: Promise<void> | undefined;
    const r = await rawStream(url, { prompt: 'x', max_tokens: 3000, temperature: 0, stream: true, ignore_eos: true }, undefined, (n) => {
      if (n === 2) closing = server.close(50);
    });
    await closing;
    const last = r.events.at(-1) as { error?: { code: string } };
    expect(last.error?.code).toBe('server_shutting_down');
    expect(r.events).not.toContain('[DONE]');
    expect(r.events.length).toBeLessThan(3000);
    expect(model.disposed).toBe(true);
  });
});
