/**
 * The OpenAI-compatible HTTP server on node:http (no framework: six routes, JSON bodies and
 * server-sent events need nothing more, and the server's failure modes stay in this code).
 *
 *   GET  /v1/models, /v1/models/{id}     the served model
 *   POST /v1/completions                  text or token-id prompt
 *   POST /v1/chat/completions             messages through the chat template
 *   GET  /health                          200 while serving, 503 while shutting down
 *   GET  /metrics                         Prometheus text format
 *
 * close() drains: it stops accepting connections, lets admitted generations finish for the
 * grace period, aborts the rest (their clients get an error event or a 503), closes every
 * connection, then disposes the model.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Model } from '../api/index.js';
import { handleChat } from './chat.js';
import { handleCompletions } from './completions.js';
import type { HandlerContext, Ticket } from './context.js';
import { ApiError, badKey, internalError, methodNotAllowed, queueFull, shuttingDown, unknownModel, unknownRoute } from './errors.js';
import { readJsonBody, sendError, sendJson } from './http-io.js';
import { TokenTexts } from './logprobs.js';
import { ServerMetrics } from './metrics.js';
import { resolveServerOptions, type ResolvedServerOptions, type ServerOptions } from './options.js';
import { Tickets } from './tickets.js';

type Handler = (req: IncomingMessage, res: ServerResponse, requestId: string, arrivedAt: number) => Promise<void> | void;

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export class MixattnServer {
  readonly http: Server;
  readonly metrics = new ServerMetrics();
  readonly options: ResolvedServerOptions;
  private readonly tickets = new Tickets();
  private readonly ctx: HandlerContext;
  private readonly routes: Record<string, Record<string, Handler>>;
  private readonly keyDigest: Buffer | undefined;
  private readonly created = Math.floor(Date.now() / 1000);
  private httpInFlight = 0;
  private bound: AddressInfo | undefined;
  private closing: Promise<void> | undefined;

  /** Resolves the options, then listens (port 0 picks a free port; host 127.0.0.1 unless given). */
  static async start(options: ServerOptions, listen: { port?: number; host?: string } = {}): Promise<MixattnServer> {
    const server = new MixattnServer(options.model, await resolveServerOptions(options));
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen(listen.port ?? 8000, listen.host ?? '127.0.0.1', () => {
        server.http.off('error', reject);
        void server.url; // remember the address
        resolve();
      });
    });
    return server;
  }

  private constructor(
    readonly model: Model,
    options: ResolvedServerOptions,
  ) {
    this.options = options;
    this.keyDigest = options.apiKey !== undefined ? sha256(options.apiKey) : undefined;
    this.ctx = {
      model,
      servedName: options.servedModelName,
      limits: { maxModelLen: options.maxModelLen, maxTokensLimit: options.maxTokensLimit },
      metrics: this.metrics,
      texts: new TokenTexts(model),
      admit: () => this.admit(),
      logError: (id, e) => options.log(`mixattn serve: request ${id} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
    };
    const post = (h: typeof handleChat): Handler => async (req, res, id, t0) => {
      const body = await readJsonBody(req, options.maxBodyBytes);
      if (body.model !== undefined && body.model !== null && body.model !== options.servedModelName) throw unknownModel(String(body.model));
      await h(this.ctx, body, res, id, t0);
    };
    this.routes = {
      '/v1/models': { GET: (_q, res) => sendJson(res, 200, { object: 'list', data: [this.modelCard()] }) },
      '/v1/completions': { POST: post(handleCompletions) },
      '/v1/chat/completions': { POST: post(handleChat) },
      '/health': { GET: (_q, res) => (this.closing ? sendError(res, shuttingDown()) : sendJson(res, 200, { status: 'ok' })) },
      '/metrics': {
        GET: (_q, res) => {
          const stats = model.disposed ? undefined : model.scheduler.metrics();
          const text = this.metrics.render(this.httpInFlight, stats);
          res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
          res.end(text);
        },
      },
    };
    this.http = createServer((req, res) => void this.handle(req, res));
  }

  /** The base URL clients use, e.g. http://127.0.0.1:8000 (the OpenAI client's baseURL adds /v1). */
  get url(): string {
    const a = this.address();
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  get port(): number {
    return this.address().port;
  }

  /** Where it listens (remembered: still known after close()). */
  private address(): AddressInfo {
    this.bound ??= this.http.address() as AddressInfo;
    return this.bound;
  }

  /** HTTP requests being handled now. */
  get requestsInFlight(): number {
    return this.httpInFlight;
  }

  /** Generations admitted and not yet ended. */
  get activeGenerations(): number {
    return this.tickets.size;
  }

  private modelCard() {
    return {
      id: this.options.servedModelName,
      object: 'model',
      created: this.created,
      owned_by: 'mixattn',
      root: this.options.servedModelName, // not the directory: clients need not see server paths
      max_model_len: this.options.maxModelLen,
    };
  }

  private admit(): Ticket {
    if (this.closing) throw shuttingDown();
    // Exact: generate() submits to the scheduler synchronously after admission, so every admitted request is counted.
    const { waiting } = this.model.scheduler.metrics();
    if (waiting >= this.options.maxQueue) throw queueFull(waiting);
    return this.tickets.issue();
  }

  private authorized(req: IncomingMessage): ApiError | undefined {
    if (!this.keyDigest) return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) return badKey(true);
    // Compare digests: equal lengths for timingSafeEqual, and no early exit on the first differing byte.
    return timingSafeEqual(sha256(m[1]), this.keyDigest) ? undefined : badKey(false);
  }

  private route(method: string, path: string): Handler {
    const model = /^\/v1\/models\/(.+)$/.exec(path);
    if (model) {
      if (method !== 'GET') throw methodNotAllowed(method, path, ['GET']);
      let name = model[1];
      try {
        name = decodeURIComponent(name);
      } catch {
        // a malformed escape: keep it as sent (it names no model)
      }
      return (_q, res) => (name === this.options.servedModelName ? sendJson(res, 200, this.modelCard()) : sendError(res, unknownModel(name)));
    }
    const methods = Object.hasOwn(this.routes, path) ? this.routes[path] : undefined;
    if (!methods) throw unknownRoute(method, path);
    const h = methods[method];
    if (!h) throw methodNotAllowed(method, path, Object.keys(methods));
    return h;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrivedAt = performance.now();
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    // Label by known route only, so random URLs cannot grow the metric's label set.
    const label = Object.hasOwn(this.routes, path) ? path : path.startsWith('/v1/models/') ? '/v1/models/{id}' : 'other';
    this.httpInFlight++;
    res.once('close', () => {
      this.httpInFlight--;
      this.metrics.requests.inc({ route: label, status: res.writableFinished ? res.statusCode : 499 });
    });
    res.setHeader('X-Request-Id', requestId);
    try {
      if (this.closing) {
        res.setHeader('Connection', 'close');
        throw shuttingDown();
      }
      // The key guards all of /v1/ (unknown routes too: nothing is revealed without it).
      const denied = path.startsWith('/v1/') ? this.authorized(req) : undefined;
      if (denied) throw denied;
      await this.route(method, path)(req, res, requestId, arrivedAt);
    } catch (e) {
      if (!(e instanceof ApiError)) this.ctx.logError(requestId, e);
      const err = e instanceof ApiError ? e : internalError(requestId);
      if (res.headersSent) res.destroy();
      else sendError(res, err);
    }
  }

  /**
   * Graceful shutdown: stop accepting, let generations in flight finish for `graceMs`
   * (default: the shutdownGraceMs option), abort the rest, close every connection, dispose
   * the model (unless disposeModel is false). Idempotent.
   */
  close(graceMs = this.options.shutdownGraceMs): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeIdleConnections();
      if (!(await this.tickets.idle(graceMs))) {
        this.options.log(`mixattn serve: aborting ${this.tickets.size} generation(s) still running after ${graceMs} ms`);
        this.tickets.abortAll('shutdown');
        await this.tickets.idle(30_000); // an abort takes effect after the step running now
      }
      this.http.closeAllConnections();
      await closed;
      if (this.options.disposeModel) await this.model[Symbol.asyncDispose]();
    })();
    return this.closing;
  }
}

/** Starts a server for a loaded model (see MixattnServer.start). */
export function startServer(options: ServerOptions, listen: { port?: number; host?: string } = {}): Promise<MixattnServer> {
  return MixattnServer.start(options, listen);
}
