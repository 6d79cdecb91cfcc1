/**
 * The part of /v1/completions and /v1/chat/completions that is the same: bound the request's
 * length, admit it, run Model.generate with an AbortSignal tied to the connection, and write
 * the result as one JSON body or as server-sent events. What differs (the payload shapes) is
 * a ResponseShapes given by each endpoint.
 *
 * Everything that can reject a request (parameters, length, the queue) happens before the
 * status line is written, so those are real HTTP errors; once a stream has begun, a failure
 * becomes an SSE error event (which the official clients raise) and the stream ends without
 * [DONE].
 */
import type { ServerResponse } from 'node:http';
import type { ChunkLogprob, GenerateChunk, GenerateInput } from '../api/index.js';
import { contextTooLong, internalError, invalidParam, requestError, shuttingDown } from './errors.js';
import { SseWriter, sendError, sendJson } from './http-io.js';
import type { HandlerContext, Ticket } from './context.js';
import type { CommonParams, Endpoint } from './request-params.js';

export type FinishReason = 'stop' | 'length';

export interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** The payloads of one endpoint (ids, timestamps and the model name are bound in). */
export interface ResponseShapes {
  /** SSE payloads before any token (chat: the assistant role). */
  opening(): unknown[];
  /** An SSE payload for new text and its tokens' logprobs, or undefined when there is nothing to send. */
  delta(text: string, logprobs: readonly ChunkLogprob[] | undefined): unknown;
  /** The SSE payload that carries the finish reason. */
  finish(reason: FinishReason): unknown;
  /** The stream_options.include_usage payload (no choices). */
  usage(usage: UsageBody): unknown;
  /** The non-streaming response body. */
  whole(text: string, logprobs: readonly ChunkLogprob[] | undefined, reason: FinishReason, usage: UsageBody): unknown;
}

export interface GenerationRequest {
  readonly endpoint: Endpoint;
  readonly requestId: string;
  /** When the request arrived (performance.now()), for time to first token. */
  readonly arrivedAt: number;
  readonly input: GenerateInput;
  readonly params: CommonParams;
  readonly templateOptions?: Record<string, unknown>;
}

/** The prompt's name in errors. */
const promptParam = (e: Endpoint) => (e === 'chat' ? 'messages' : 'prompt');

/** max_tokens as requested, or the endpoint's default, checked against the limits. */
function settleMaxTokens(ctx: HandlerContext, g: GenerationRequest, promptLen: number): number {
  const { maxModelLen, maxTokensLimit } = ctx.limits;
  const { maxTokens, maxTokensParam } = g.params;
  if (promptLen >= maxModelLen) {
    throw contextTooLong(promptParam(g.endpoint), `This model's maximum context length is ${maxModelLen} tokens, but the ${promptParam(g.endpoint)} has ${promptLen} tokens.`);
  }
  const room = maxModelLen - promptLen;
  if (maxTokens === undefined) {
    // OpenAI's defaults: 16 for completions; chat runs to the end of the context (or generation_config's max_new_tokens).
    const dflt = g.endpoint === 'completions' ? 16 : (ctx.model.samplingDefaults.maxTokens ?? Infinity);
    return Math.min(dflt, room, maxTokensLimit);
  }
  if (maxTokens > maxTokensLimit) throw invalidParam(maxTokensParam, `${maxTokensParam} must be at most ${maxTokensLimit}, got ${maxTokens}`);
  if (maxTokens > room) {
    throw contextTooLong(
      maxTokensParam,
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${promptLen + maxTokens} tokens ` +
        `(${promptLen} in the ${promptParam(g.endpoint)}, ${maxTokens} for the completion). Reduce the ${promptParam(g.endpoint)} or ${maxTokensParam}.`,
    );
  }
  return maxTokens;
}

const usageOf = (c: GenerateChunk): UsageBody => ({
  prompt_tokens: c.usage!.promptTokens,
  completion_tokens: c.usage!.completionTokens,
  total_tokens: c.usage!.promptTokens + c.usage!.completionTokens,
});

/** Serves one generation request; resolves when its response has ended (or its client is gone). */
export async function serveGeneration(ctx: HandlerContext, g: GenerationRequest, res: ServerResponse, shapes: ResponseShapes): Promise<void> {
  const { model, metrics } = ctx;
  let chunks: AsyncIterableIterator<GenerateChunk>;
  let ticket: Ticket;
  try {
    const opts = { chatTemplateOptions: g.templateOptions };
    const promptIds = model.encode(g.input, opts);
    const maxTokens = settleMaxTokens(ctx, g, promptIds.length);
    ticket = ctx.admit();
    try {
      chunks = model.generate({ promptIds }, { ...g.params.sampling, maxTokens, skipSpecialTokens: g.params.skipSpecialTokens, signal: ticket.signal });
    } catch (e) {
      ticket.release();
      throw e;
    }
  } catch (e) {
    throw requestError(e, promptParam(g.endpoint), g.params.renames);
  }
  // A response that closes before it ended means the client went away: stop generating, free its KV blocks now.
  const onClose = () => ticket.abort('client');
  res.once('close', onClose);
  // It may have gone already (while the request waited to be parsed): then 'close' has fired.
  if (res.destroyed || !res.socket || res.socket.destroyed) onClose();
  const sse = g.params.stream ? new SseWriter(res) : undefined;
  let firstToken = true;
  let text = '';
  const logprobs: ChunkLogprob[] = [];
  try {
    if (sse) {
      sse.open({ 'X-Request-Id': g.requestId });
      for (const p of shapes.opening()) sse.send(p);
    }
    for await (const c of chunks) {
      if (firstToken && c.tokenIds.length > 0) {
        firstToken = false;
        metrics.ttft.observe((performance.now() - g.arrivedAt) / 1000);
      }
      if (c.finishReason !== 'abort') {
        if (sse) {
          const d = shapes.delta(c.text, c.logprobs);
          if (d !== undefined) sse.send(d);
        } else {
          text += c.text;
          if (c.logprobs) logprobs.push(...c.logprobs);
        }
      }
      if (c.finishReason === undefined) continue;
      const usage = usageOf(c);
      metrics.promptTokens.inc({}, usage.prompt_tokens);
      metrics.generationTokens.inc({}, usage.completion_tokens);
      metrics.finished.inc({ reason: c.finishReason });
      if (c.finishReason === 'abort') {
        // The client is gone (nothing to write) or the server is shutting down (say so).
        if (ticket.cause === 'shutdown') {
          if (sse) {
            sse.send(shuttingDown().body());
            sse.end(false);
          } else sendError(res, shuttingDown());
        }
        return;
      }
      metrics.e2e.observe((performance.now() - g.arrivedAt) / 1000);
      if (sse) {
        sse.send(shapes.finish(c.finishReason));
        if (g.params.includeUsage) sse.send(shapes.usage(usage));
        sse.end();
      } else {
        sendJson(res, 200, shapes.whole(text, g.params.logprobs !== undefined ? logprobs : undefined, c.finishReason, usage), { 'X-Request-Id': g.requestId });
      }
      return;
    }
  } catch (e) {
    // A step failed under this request: log it, tell the client only that it failed.
    ctx.logError(g.requestId, e);
    const err = internalError(g.requestId);
    if (sse && res.headersSent) {
      sse.send(err.body());
      sse.end(false);
    } else sendError(res, err);
  } finally {
    res.off('close', onClose);
    ticket.release();
  }
}
