/**
 * Special token ids and sampling defaults of a model directory: generation_config.json first,
 * then config.json for the token ids it leaves out (as transformers' GenerationConfig does
 * when it is built from the model config).
 */
import type { ConfigFields } from './config-fields.js';

export interface GenerationDefaults {
  /** Every id that ends generation (eos_token_id may be one id or a list). */
  readonly eosTokenIds: number[];
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  /** HF samples only when do_sample is true; otherwise it decodes greedily. */
  readonly doSample?: boolean;
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly minP?: number;
  readonly repetitionPenalty?: number;
  readonly maxNewTokens?: number;
}

function tokenIds(c: ConfigFields, field: string): number[] | undefined {
  const v = c.raw(field);
  if (v === undefined || v === null) return undefined;
  const ids = Array.isArray(v) ? v : [v];
  if (!ids.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    c.fail(field, `must be a token id or a list of token ids (got ${JSON.stringify(v).slice(0, 60)})`);
  }
  return [...new Set(ids as number[])];
}

function unitInterval(c: ConfigFields, field: string, allowZero: boolean): number | undefined {
  if (!c.has(field)) return undefined;
  const v = c.raw(field);
  if (typeof v !== 'number' || !(allowZero ? v >= 0 : v > 0) || v > 1) {
    return c.fail(field, `must be a number in ${allowZero ? '[0' : '(0'}, 1] (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** `gen`: generation_config.json (or undefined when absent); `model`: config.json. */
export function generationDefaults(gen: ConfigFields | undefined, model: ConfigFields): GenerationDefaults {
  const id = (field: string): number | undefined => (gen && tokenIds(gen, field)?.[0]) ?? tokenIds(model, field)?.[0];
  const out: { -readonly [K in keyof GenerationDefaults]: GenerationDefaults[K] } = {
    eosTokenIds: (gen && tokenIds(gen, 'eos_token_id')) ?? tokenIds(model, 'eos_token_id') ?? [],
  };
  const bos = id('bos_token_id');
  const pad = id('pad_token_id');
  if (bos !== undefined) out.bosTokenId = bos;
  if (pad !== undefined) out.padTokenId = pad;
  if (!gen) return out;
  if (gen.has('do_sample')) out.doSample = gen.bool('do_sample', false);
  if (gen.has('temperature')) {
    const t = gen.raw('temperature');
    if (typeof t !== 'number' || !(t >= 0) || !Number.isFinite(t)) gen.fail('temperature', `must be a number >= 0 (got ${JSON.stringify(t)})`);
    out.temperature = t as number;
  }
  if (gen.has('top_k')) out.topK = gen.int('top_k', undefined, 0);
  const topP = unitInterval(gen, 'top_p', false);
  if (topP !== undefined) out.topP = topP;
  const minP = unitInterval(gen, 'min_p', true);
  if (minP !== undefined) out.minP = minP;
  if (gen.has('repetition_penalty')) out.repetitionPenalty = gen.num('repetition_penalty');
  if (gen.has('max_new_tokens')) out.maxNewTokens = gen.int('max_new_tokens');
  return out;
}
