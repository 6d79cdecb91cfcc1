/** POST /v1/completions: OpenAI's legacy text completion, one choice. */
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { HandlerContext } from './context.js';
import { serveGeneration, type ResponseShapes } from './generation.js';
import { CompletionLogprobsBuilder } from './logprobs.js';
import { commonParams, completionPrompt, type Body } from './request-params.js';

function completionShapes(ctx: HandlerContext, model: string, wantLogprobs: boolean, includeUsage: boolean): ResponseShapes {
  const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const head = { id, object: 'text_completion', created, model };
  // With include_usage every chunk carries usage: null and a last chunk carries the totals.
  const tail = includeUsage ? { usage: null } : {};
  const builder = new CompletionLogprobsBuilder(ctx.texts);
  const choice = (text: string, logprobs: unknown, finish: string | null) => ({ index: 0, text, logprobs, finish_reason: finish });
  return {
    opening: () => [],
    delta: (text, lps) => {
      if (text === '' && !(wantLogprobs && lps && lps.length > 0)) return undefined;
      return { ...head, choices: [choice(text, wantLogprobs ? builder.add(lps ?? []) : null, null)], ...tail };
    },
    finish: (reason) => ({ ...head, choices: [choice('', null, reason)], ...tail }),
    usage: (usage) => ({ ...head, choices: [], usage }),
    whole: (text, lps, reason, usage) => ({ ...head, choices: [choice(text, lps ? builder.add(lps) : null, reason)], usage }),
  };
}

export async function handleCompletions(ctx: HandlerContext, body: Body, res: ServerResponse, requestId: string, arrivedAt: number): Promise<void> {
  const params = commonParams(body, 'completions');
  const input = completionPrompt(body);
  const model = typeof body.model === 'string' ? body.model : ctx.servedName;
  const shapes = completionShapes(ctx, model, params.logprobs !== undefined, params.includeUsage);
  await serveGeneration(ctx, { endpoint: 'completions', requestId, arrivedAt, input, params }, res, shapes);
}
