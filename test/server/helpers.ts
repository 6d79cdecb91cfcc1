/** A server on a fixture model (loopback, port 0), the official client, and a raw SSE reader. */
import { Agent, request } from 'node:http';
import OpenAI from 'openai';
import { loadModel, type LoadModelOptions, type Model } from '../../lib/api/index.js';
import { startServer, type MixattnServer, type ServerOptions } from '../../lib/server/index.js';
import { fixture } from '../api/helpers.js';

export { fixture };

export const MODEL_NAME = 'tiny';

export async function serveFixture(
  name = 'llama3',
  opts: Partial<ServerOptions> = {},
  load: LoadModelOptions = {},
): Promise<{ server: MixattnServer; model: Model }> {
  const model = await loadModel(fixture(name), { threads: 2, ...load });
  const server = await startServer({ model, servedModelName: MODEL_NAME, log: () => {}, ...opts }, { port: 0 });
  return { server, model };
}

/** The official client against the server; no retries, so every error surfaces as it came. */
export function client(server: MixattnServer, apiKey = 'unused'): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
}

/** Polls `cond` every 5 ms until it holds or `ms` pass; returns whether it held. */
export async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

export interface RawStream {
  status: number;
  /** Every `data:` payload in order, `[DONE]` included as the string. */
  events: (Record<string, unknown> | '[DONE]')[];
  /** The stream was cut by our abort before it ended. */
  aborted: boolean;
}

/**
 * POSTs a streaming request over node:http and parses the SSE frames itself (to check the
 * exact framing: `data: ...` events separated by blank lines, ending with `data: [DONE]`).
 * `onEvent` may abort the request through `ac`. (Not fetch: Node's fetch can leave a body
 * read pending forever when aborted near the end of a response, nodejs/node#56917.)
 */
/** One connection per request, closed after it: the server's connection count then tells when every request is over. */
const oneShot = new Agent({ keepAlive: false });

/** The server's open connections. */
export const connections = (server: MixattnServer): Promise<number> =>
  new Promise((resolve, reject) => server.http.getConnections((e, n) => (e ? reject(e) : resolve(n))));

export function rawStream(url: string, body: unknown, ac = new AbortController(), onEvent?: (n: number) => void): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const out: RawStream = { status: 0, events: [], aborted: false };
    let settled = false;
    const settle = (e?: unknown) => {
      if (settled) return;
      settled = true;
      if (e === undefined) return resolve(out);
      if (ac.signal.aborted) {
        out.aborted = true;
        return resolve(out);
      }
      reject(e instanceof Error ? e : new Error(String(e)));
    };
    const req = request(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: ac.signal, agent: oneShot }, (res) => {
      out.status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (text: string) => {
        buf += text;
        let i: number;
        try {
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (!frame.startsWith('data: ')) throw new Error(`bad SSE frame: ${JSON.stringify(frame)}`);
            const data = frame.slice(6);
            out.events.push(data === '[DONE]' ? '[DONE]' : (JSON.parse(data) as Record<string, unknown>));
            onEvent?.(out.events.length);
          }
        } catch (e) {
          req.destroy();
          settle(e);
        }
      });
      res.on('end', () => settle(buf === '' ? undefined : new Error(`trailing bytes after the last SSE frame: ${JSON.stringify(buf)}`)));
      res.on('error', settle);
      res.on('close', () => settle(ac.signal.aborted ? new Error('aborted') : undefined));
    });
    req.on('error', settle);
    req.end(JSON.stringify(body));
  });
}
