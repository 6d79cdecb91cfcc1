/**
 * Errors in OpenAI's JSON shape ({ error: { message, type, param, code } }) with their HTTP
 * status. Handlers throw ApiError; anything else that escapes a handler becomes a 500 whose
 * message names only the request id (the details go to the server's log, never the client).
 */
import { SamplingParamError } from '../sampling/index.js';
import { TokenizerError } from '../tokenizer/index.js';

export interface ErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

export class ApiError extends Error {
  override name = 'ApiError';
  /** Extra response headers (405's Allow). */
  headers: Record<string, string> = {};
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: a parameter has a bad value (the message names it). */
export const invalidParam = (param: string, message: string, code = 'invalid_value'): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, code);

/** 400: a parameter this server does not implement (rather than silently ignoring it). */
export const unsupportedParam = (param: string, message: string): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, 'unsupported_value');

export const contextTooLong = (param: string, message: string): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, 'context_length_exceeded');

export const unknownModel = (name: string): ApiError =>
  new ApiError(404, `The model \`${name}\` does not exist.`, 'invalid_request_error', 'model', 'model_not_found');

export const unknownRoute = (method: string, path: string): ApiError =>
  new ApiError(404, `Unknown request URL: ${method} ${path}.`, 'invalid_request_error', null, 'unknown_url');

export function methodNotAllowed(method: string, path: string, allowed: readonly string[]): ApiError {
  const e = new ApiError(405, `Method ${method} is not allowed on ${path} (allowed: ${allowed.join(', ')}).`, 'invalid_request_error', null, 'method_not_allowed');
  e.headers = { Allow: allowed.join(', ') };
  return e;
}

export const badKey = (missing: boolean): ApiError =>
  new ApiError(
    401,
    missing ? 'Missing API key: send it as "Authorization: Bearer <key>".' : 'Incorrect API key provided.',
    'invalid_request_error',
    null,
    'invalid_api_key',
  );

export const bodyTooLarge = (limit: number): ApiError =>
  new ApiError(413, `The request body is larger than this server accepts (${limit} bytes).`, 'invalid_request_error', null, 'request_too_large');

export const queueFull = (waiting: number): ApiError =>
  new ApiError(429, `The server is at capacity (${waiting} requests waiting); retry later.`, 'rate_limit_exceeded', null, 'queue_full');

export const shuttingDown = (): ApiError =>
  new ApiError(503, 'The server is shutting down.', 'server_error', null, 'server_shutting_down');

export const internalError = (requestId: string): ApiError =>
  new ApiError(500, `The server had an error while processing your request (request id ${requestId}).`, 'server_error');

/** The OpenAI name of an engine sampling parameter (topK → top_k), keeping an index suffix out. */
export function apiParamName(engineParam: string, renames: Readonly<Record<string, string>> = {}): string {
  const base = engineParam.replace(/\[\d+\]$/, '');
  return renames[base] ?? base.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Errors that model.encode/generate throw synchronously for a bad request, as 400s: invalid
 * sampling values (named as the API names them), token ids outside the vocabulary, chat
 * template failures, a prompt the KV pool cannot hold. Anything else is not the client's
 * fault and is rethrown (it becomes a 500).
 */
export function requestError(e: unknown, promptParam: string, renames: Readonly<Record<string, string>> = {}): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof SamplingParamError) {
    const param = apiParamName(e.param, renames);
    return invalidParam(param, e.message.replace(/^[\w[\]]+/, param));
  }
  // Tokenizer messages start with the file they are about: a server path the client must not see.
  if (e instanceof TokenizerError) return invalidParam(promptParam, `${promptParam}: ${e.message.replace(/^[^:]*:\s*/, '')}`);
  if (e instanceof RangeError && /KV pages/.test(e.message)) return contextTooLong(promptParam, e.message.replace(/^generate: /, ''));
  if (e instanceof RangeError && /stop strings need a tokenizer/.test(e.message)) return invalidParam('stop', e.message.replace(/^generate: /, ''));
  if (e instanceof RangeError && /promptIds\[\d+\]|prompt is empty/.test(e.message)) {
    return invalidParam(promptParam, e.message.replace(/^generate: /, '').replace(/promptIds/, promptParam));
  }
  if (e instanceof Error && /has no tokenizer/.test(e.message)) return invalidParam(promptParam, e.message.replace(/^generate: /, ''));
  throw e;
}
