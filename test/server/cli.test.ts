import { describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { runServe, SERVE_USAGE } from '../../lib/cli/serve.js';
import type { MixattnServer } from '../../lib/server/index.js';
import { fixture, serveFixture, until } from './helpers.js';

describe('mixattn serve', () => {
  it('serves a model directory until its signal, then shuts down and disposes the model', async () => {
    const ac = new AbortController();
    let server: MixattnServer | undefined;
    let err = '';
    const done = runServe(['--model', fixture('llama3'), '--port', '0', '--threads', '2', '--served-model-name', 'tiny', '--max-tokens-limit', '8'], {
      stdout: () => {},
      stderr: (t) => (err += t),
      signal: ac.signal,
      onListening: (s) => (server = s),
    });
    expect(await until(() => server !== undefined, 30_000)).toBe(true);
    expect(server!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/); // loopback unless --host says otherwise
    expect(err).toMatch(/serving 'tiny' \(plan .*, max_model_len 256\)/);
    const models = (await (await fetch(`${server!.url}/v1/models`)).json()) as { data: { id: string; max_model_len: number }[] };
    expect(models.data).toMatchObject([{ id: 'tiny', max_model_len: 256 }]);
    const r = await fetch(`${server!.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'hi', max_tokens: 9 }) });
    expect(r.status).toBe(400); // over --max-tokens-limit
    ac.abort();
    await done;
    expect(server!.model.disposed).toBe(true);
    expect(err).toMatch(/shutting down/);
  });

  it('without --model serves the built-in model under its name', async () => {
    const saved = process.env.MIXATTN_DEFAULT_MODEL;
    process.env.MIXATTN_DEFAULT_MODEL = fixture('llama3'); // stands in for models/mixattn-tiny
    const ac = new AbortController();
    let server: MixattnServer | undefined;
    let err = '';
    try {
      const done = runServe(['--port', '0', '--threads', '2'], {
        stdout: () => {},
        stderr: (t) => (err += t),
        signal: ac.signal,
        onListening: (s) => (server = s),
      });
      expect(await until(() => server !== undefined, 30_000)).toBe(true);
      expect(err).toMatch(/serving 'mixattn-tiny'/);
      const models = (await (await fetch(`${server!.url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(['mixattn-tiny']);
      ac.abort();
      await done;
      expect(server!.model.disposed).toBe(true);
    } finally {
      ac.abort();
      if (saved === undefined) delete process.env.MIXATTN_DEFAULT_MODEL;
      else process.env.MIXATTN_DEFAULT_MODEL = saved;
    }
  });

  it('prints its usage; bad flags are one-line errors before anything loads', async () => {
    let out = '';
    await runServe(['--help'], { stdout: (t) => (out += t), stderr: () => {} });
    expect(out).toBe(`${SERVE_USAGE}\n`);
    expect(SERVE_USAGE).toMatch(/--api-key KEY/);
    // Without --model it serves the built-in model; when that is missing, one line says so.
    const saved = process.env.MIXATTN_DEFAULT_MODEL;
    process.env.MIXATTN_DEFAULT_MODEL = '/nonexistent/mixattn-model';
    try {
      await expect(runServe([], { stdout: () => {}, stderr: () => {} })).rejects.toThrow(/^serve: the built-in model is missing: no config\.json in \/nonexistent\/mixattn-model/);
    } finally {
      if (saved === undefined) delete process.env.MIXATTN_DEFAULT_MODEL;
      else process.env.MIXATTN_DEFAULT_MODEL = saved;
    }
    await expect(runServe(['--model', 'x', '--port', 'abc'])).rejects.toThrow(/--port must be an integer/);
    await expect(runServe(['--model', 'x', '--port', '70000'])).rejects.toThrow(/at most 65535/);
    await expect(runServe(['--model', 'x', '--max-queue', '0'])).rejects.toThrow(/--max-queue must be an integer >= 1/);
    await expect(runServe(['--model', 'x', '--nope'])).rejects.toThrow(/serve: Unknown option '--nope'/);
  });
});

describe('a client that disconnects from a non-streaming request', () => {
  it('aborts its generation at once: the KV pages return', async () => {
    const { server, model } = await serveFixture('llama3', { maxModelLen: 4000 });
    const req = request(`${server.url}/v1/completions`, { method: 'POST' });
    req.on('error', () => {});
    req.end(JSON.stringify({ prompt: 'x', max_tokens: 3000, temperature: 0, ignore_eos: true }));
    expect(await until(() => model.engine.blocks.usedPages > 0)).toBe(true);
    req.destroy();
    expect(await until(() => server.activeGenerations === 0 && model.engine.blocks.usedPages === 0)).toBe(true);
    expect(server.metrics.finished.get({ reason: 'abort' })).toBe(1);
    expect(await until(() => server.metrics.requests.get({ route: '/v1/completions', status: 499 }) === 1)).toBe(true);
    await server.close();
  });
});
