/**
 * Reading bounded JSON bodies and writing JSON, errors and server-sent events on node:http.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, bodyTooLarge, invalidParam } from './errors.js';

/**
 * The request body parsed as a JSON object. A declared or actual size over `limit` is a 413;
 * the rest of such a body is read and dropped (bounded by `limit` × 16, then the connection is
 * cut), so that the client gets the 413 rather than a reset while it is still sending.
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw discardRest(req, limit);
  // Events, not for-await: leaving a for-await early would destroy the request, and the socket with it.
  const text = await new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (part: Buffer) => {
      size += part.length;
      if (size <= limit) return void parts.push(part);
      req.off('data', onData);
      reject(discardRest(req, limit));
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.once('error', reject);
    // A client gone before the end of its body: nothing will answer it; settle so nothing waits forever.
    req.once('close', () => reject(new ApiError(400, 'The request body ended early.', 'invalid_request_error', null, 'incomplete_body')));
  });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'We could not parse the JSON body of your request. Send a JSON object (Content-Type: application/json).', 'invalid_request_error', null, 'invalid_json');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidParam('body', 'The request body must be a JSON object.');
  return body as Record<string, unknown>;
}

function discardRest(req: IncomingMessage, limit: number): ApiError {
  let dropped = 0;
  req.on('data', (part: Buffer) => {
    dropped += part.length;
    if (dropped > limit * 16) req.socket.destroy();
  });
  req.resume();
  return bodyTooLarge(limit);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: ApiError, headers: Record<string, string> = {}): void {
  // A 413 leaves a body unread on the socket: close the connection instead of reusing it.
  const extra = { ...err.headers, ...(err.status === 413 ? { Connection: 'close' } : {}), ...headers };
  sendJson(res, err.status, err.body(), extra);
}

/** One SSE stream: `data: {json}\n\n` events; end() writes `data: [DONE]`. Writes after a disconnect are dropped. */
export class SseWriter {
  constructor(private readonly res: ServerResponse) {}

  open(headers: Record<string, string> = {}): void {
    if (this.gone) return;
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no', // proxies (nginx) must not buffer the stream
      ...headers,
    });
    this.res.flushHeaders();
  }

  get gone(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  send(payload: unknown): void {
    if (!this.gone) this.res.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** Ends the stream: `data: [DONE]` after a normal end; without it after an error event. */
  end(done = true): void {
    if (this.gone) return;
    this.res.end(done ? 'data: [DONE]\n\n' : undefined);
  }
}
