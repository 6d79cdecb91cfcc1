/**
 * OpenAI request bodies → generate() options. Only types and OpenAI-specific rules are checked
 * here; sampling values are validated by the engine (validateSamplingParams), whose messages
 * are renamed to the API's parameter names (see requestError). JSON null means "not set", as
 * the official clients send it. Unknown fields are ignored, as vLLM does; fields that would
 * change the result but are not implemented (n > 1, echo, suffix, logit_bias, tools) are 400s.
 */
import { MAX_TOP_LOGPROBS, type SamplingParams } from '../sampling/index.js';
import type { ChatMessage } from '../api/index.js';
import { invalidParam, unsupportedParam } from './errors.js';

export type Body = Record<string, unknown>;
export type Endpoint = 'completions' | 'chat';

export interface CommonParams {
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** The requested output length and the name it came under (for errors). */
  readonly maxTokens: number | undefined;
  readonly maxTokensParam: string;
  /** Sampling values as the engine names them (maxTokens left out: the server settles it). */
  readonly sampling: SamplingParams;
  readonly skipSpecialTokens: boolean;
  /** Top-n alternatives per token when logprobs are requested; undefined when not. */
  readonly logprobs: number | undefined;
  /** Engine parameter names → this endpoint's API names, for error messages. */
  readonly renames: Readonly<Record<string, string>>;
}

const given = (body: Body, key: string): unknown => (body[key] === null ? undefined : body[key]);

function bool(body: Body, key: string): boolean | undefined {
  const v = given(body, key);
  if (v !== undefined && typeof v !== 'boolean') throw invalidParam(key, `${key} must be a boolean, got ${JSON.stringify(v)}`, 'invalid_type');
  return v;
}

function int(body: Body, key: string, min: number): number | undefined {
  const v = given(body, key);
  if (v !== undefined && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= min)) {
    throw invalidParam(key, `${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A number, or left for the engine to reject with its rule (a string, say). */
const value = (body: Body, key: string): number | undefined => given(body, key) as number | undefined;

function rejectUnsupported(body: Body, endpoint: Endpoint): void {
  const n = int(body, 'n', 1);
  if (n !== undefined && n !== 1) throw unsupportedParam('n', `n must be 1: this server returns one choice per request, got ${n}`);
  if (endpoint === 'completions') {
    const bestOf = given(body, 'best_of');
    if (bestOf !== undefined && bestOf !== 1) throw unsupportedParam('best_of', 'best_of is not supported (only 1)');
    if (given(body, 'echo') === true) throw unsupportedParam('echo', 'echo is not supported');
    if (given(body, 'suffix') !== undefined) throw unsupportedParam('suffix', 'suffix is not supported');
  } else {
    for (const key of ['tools', 'functions']) {
      const v = given(body, key);
      if (v !== undefined && !(Array.isArray(v) && v.length === 0)) throw unsupportedParam(key, `${key} are not supported (no tool calling)`);
    }
    const rf = given(body, 'response_format') as { type?: unknown } | undefined;
    if (rf !== undefined && rf?.type !== 'text') throw unsupportedParam('response_format', 'response_format must be {"type": "text"} (structured output is not supported)');
  }
  const bias = given(body, 'logit_bias');
  if (bias !== undefined && !(typeof bias === 'object' && Object.keys(bias as object).length === 0)) {
    throw unsupportedParam('logit_bias', 'logit_bias is not supported');
  }
  const minTokens = int(body, 'min_tokens', 0);
  if (minTokens !== undefined && minTokens > 0) throw unsupportedParam('min_tokens', 'min_tokens is not supported');
}

function stopStrings(body: Body): string[] | undefined {
  const v = given(body, 'stop');
  if (v === undefined) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw invalidParam('stop', 'stop must be a non-empty string or an array of non-empty strings');
  }
  if (list.length > 16) throw invalidParam('stop', `stop takes at most 16 strings, got ${list.length}`);
  return list;
}

function logprobsOf(body: Body, endpoint: Endpoint): number | undefined {
  if (endpoint === 'completions') {
    const v = given(body, 'logprobs');
    if (v === undefined || v === false) return undefined;
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TOP_LOGPROBS)) {
      throw invalidParam('logprobs', `logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${JSON.stringify(v)}`);
    }
    return v;
  }
  const on = bool(body, 'logprobs') ?? false;
  const top = given(body, 'top_logprobs');
  if (top !== undefined && !(typeof top === 'number' && Number.isSafeInteger(top) && top >= 0 && top <= MAX_TOP_LOGPROBS)) {
    throw invalidParam('top_logprobs', `top_logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${JSON.stringify(top)}`);
  }
  if (top !== undefined && top > 0 && !on) throw invalidParam('top_logprobs', 'top_logprobs requires logprobs to be true');
  return on ? ((top as number | undefined) ?? 0) : undefined;
}

export function commonParams(body: Body, endpoint: Endpoint): CommonParams {
  rejectUnsupported(body, endpoint);
  const stream = bool(body, 'stream') ?? false;
  const streamOptions = given(body, 'stream_options');
  if (streamOptions !== undefined && !stream) throw invalidParam('stream_options', 'stream_options is only allowed when stream is true');
  if (streamOptions !== undefined && typeof streamOptions !== 'object') throw invalidParam('stream_options', 'stream_options must be an object');
  const includeUsage = bool((streamOptions ?? {}) as Body, 'include_usage') ?? false;

  const maxTokensParam = endpoint === 'chat' && given(body, 'max_completion_tokens') !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = int(body, maxTokensParam, 1);
  const logprobs = logprobsOf(body, endpoint);
  let topK = value(body, 'top_k');
  if (topK === -1) topK = 0; // vLLM's "off"
  const stop = stopStrings(body);
  const sampling: Record<string, unknown> = {
    temperature: value(body, 'temperature'),
    topP: value(body, 'top_p'),
    topK,
    minP: value(body, 'min_p'),
    repetitionPenalty: value(body, 'repetition_penalty'),
    presencePenalty: value(body, 'presence_penalty'),
    frequencyPenalty: value(body, 'frequency_penalty'),
    seed: value(body, 'seed'),
    stop,
    stopTokenIds: given(body, 'stop_token_ids'),
    ignoreEos: given(body, 'ignore_eos'),
    ...(logprobs !== undefined ? { logprobs: true, topLogprobs: logprobs } : {}),
  };
  return {
    stream,
    includeUsage,
    maxTokens,
    maxTokensParam,
    sampling: Object.fromEntries(Object.entries(sampling).filter(([, v]) => v !== undefined)) as SamplingParams,
    skipSpecialTokens: bool(body, 'skip_special_tokens') ?? true,
    logprobs,
    renames: { maxTokens: maxTokensParam, topLogprobs: endpoint === 'chat' ? 'top_logprobs' : 'logprobs' },
  };
}

/** /v1/completions `prompt`: a string or token ids, or a batch of exactly one of them. */
export function completionPrompt(body: Body): string | { promptIds: number[] } {
  let p = given(body, 'prompt');
  if (p === undefined) throw invalidParam('prompt', 'prompt is required', 'missing_required_parameter');
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  if (typeof p === 'string') return p;
  if (Array.isArray(p) && p.every((t) => typeof t === 'number')) return { promptIds: p as number[] };
  if (Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === 'string' || Array.isArray(x))) {
    throw unsupportedParam('prompt', 'batches of prompts are not supported: send one prompt per request');
  }
  throw invalidParam('prompt', 'prompt must be a string or an array of token ids');
}

/** /v1/chat/completions `messages`, with content parts flattened to text. */
export function chatMessages(body: Body): { messages: ChatMessage[]; templateOptions: Record<string, unknown> } {
  const raw = given(body, 'messages');
  if (!Array.isArray(raw) || raw.length === 0) throw invalidParam('messages', 'messages must be a non-empty array of {role, content}');
  const messages = raw.map((m: unknown, i): ChatMessage => {
    if (m === null || typeof m !== 'object' || typeof (m as Body).role !== 'string') {
      throw invalidParam(`messages[${i}].role`, `messages[${i}] must be an object with a string role`);
    }
    const msg = m as ChatMessage;
    const c = msg.content;
    if (c === undefined || c === null || typeof c === 'string') return { ...msg, content: c ?? '' };
    if (!Array.isArray(c)) throw invalidParam(`messages[${i}].content`, `messages[${i}].content must be a string or an array of text parts`);
    const text = c.map((part: unknown, j) => {
      const p = part as Body | null;
      if (p?.type !== 'text' || typeof p.text !== 'string') {
        throw unsupportedParam(`messages[${i}].content[${j}]`, `messages[${i}].content[${j}]: only text parts are supported`);
      }
      return p.text;
    });
    return { ...msg, content: text.join('\n') };
  });
  const kw = given(body, 'chat_template_kwargs');
  if (kw !== undefined && (typeof kw !== 'object' || Array.isArray(kw))) throw invalidParam('chat_template_kwargs', 'chat_template_kwargs must be an object');
  return { messages, templateOptions: (kw ?? {}) as Record<string, unknown> };
}
