/** POST /v1/chat/completions: messages rendered by the model's chat template, one choice. */
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { HandlerContext } from './context.js';
import { invalidParam } from './errors.js';
import { serveGeneration, type ResponseShapes } from './generation.js';
import { chatLogprobs } from './logprobs.js';
import { chatMessages, commonParams, type Body } from './request-params.js';

function chatShapes(ctx: HandlerContext, model: string, wantLogprobs: boolean, includeUsage: boolean): ResponseShapes {
  const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const chunkHead = { id, object: 'chat.completion.chunk', created, model };
  const tail = includeUsage ? { usage: null } : {};
  const chunk = (delta: object, logprobs: unknown, finish: string | null) => ({
    ...chunkHead,
    choices: [{ index: 0, delta, logprobs, finish_reason: finish }],
    ...tail,
  });
  return {
    // OpenAI opens every stream with the role, before any content.
    opening: () => [chunk({ role: 'assistant', content: '' }, null, null)],
    delta: (text, lps) => {
      if (text === '' && !(wantLogprobs && lps && lps.length > 0)) return undefined;
      return chunk({ content: text }, wantLogprobs ? { content: chatLogprobs(lps ?? [], ctx.texts), refusal: null } : null, null);
    },
    finish: (reason) => chunk({}, null, reason),
    usage: (usage) => ({ ...chunkHead, choices: [], usage }),
    whole: (text, lps, reason, usage) => ({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: lps ? { content: chatLogprobs(lps, ctx.texts), refusal: null } : null,
          finish_reason: reason,
        },
      ],
      usage,
    }),
  };
}

export async function handleChat(ctx: HandlerContext, body: Body, res: ServerResponse, requestId: string, arrivedAt: number): Promise<void> {
  const params = commonParams(body, 'chat');
  const { messages, templateOptions } = chatMessages(body);
  if (!ctx.model.tokenizer?.hasChatTemplate) {
    throw invalidParam('messages', 'This model has no chat template (tokenizer_config.json "chat_template"); use /v1/completions.');
  }
  const model = typeof body.model === 'string' ? body.model : ctx.servedName;
  const shapes = chatShapes(ctx, model, params.logprobs !== undefined, params.includeUsage);
  await serveGeneration(ctx, { endpoint: 'chat', requestId, arrivedAt, input: messages, params, templateOptions }, res, shapes);
}
