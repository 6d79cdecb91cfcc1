/**
 * Logprobs in OpenAI's two shapes: the legacy completions one (parallel arrays and top-n
 * maps) and chat's (one entry per token with its bytes and alternatives). A token's text is
 * its decode on its own (a piece of a UTF-8 character shows as U+FFFD there; `bytes` are
 * that text's, as vLLM reports them). JSON has no -Infinity: such values become -9999, as in vLLM.
 */
import type { ChunkLogprob, Model } from '../api/index.js';

const finite = (lp: number): number => (Number.isFinite(lp) ? lp : -9999);

/** Token id → text, decoded once per id (the vocabulary is bounded, so is the cache). */
export class TokenTexts {
  private readonly cache = new Map<number, string>();
  constructor(private readonly model: Model) {}

  text(id: number): string {
    let s = this.cache.get(id);
    if (s === undefined) {
      const tok = this.model.tokenizer;
      s = tok && id < tok.vocabSize ? tok.decode([id]) : `token_id:${id}`;
      this.cache.set(id, s);
    }
    return s;
  }
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** Accumulates the completions shape; `offset` runs over the generated text. */
export class CompletionLogprobsBuilder {
  private offset = 0;
  constructor(private readonly texts: TokenTexts) {}

  /** The entries for some tokens (a streaming chunk's, or all of them). */
  add(entries: readonly ChunkLogprob[]): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const e of entries) {
      const text = this.texts.text(e.token);
      out.tokens.push(text);
      out.token_logprobs.push(finite(e.logprob));
      // The sampled token is always among the alternatives (OpenAI: up to logprobs + 1 of them).
      // Keys are texts: distinct tokens with the same text (pieces of one UTF-8 character) keep the likelier.
      const top: Record<string, number> = {};
      top[text] = finite(e.logprob);
      for (const t of e.topLogprobs ?? []) top[this.texts.text(t.token)] = Math.max(top[this.texts.text(t.token)] ?? -Infinity, finite(t.logprob));
      out.top_logprobs.push(top);
      out.text_offset.push(this.offset);
      this.offset += text.length;
    }
    return out;
  }
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function chatLogprobs(entries: readonly ChunkLogprob[], texts: TokenTexts): ChatTokenLogprob[] {
  const one = (id: number, lp: number) => {
    const token = texts.text(id);
    return { token, logprob: finite(lp), bytes: [...Buffer.from(token, 'utf8')] };
  };
  return entries.map((e) => ({ ...one(e.token, e.logprob), top_logprobs: (e.topLogprobs ?? []).map((t) => one(t.token, t.logprob)) }));
}

export function mergeCompletionLogprobs(parts: readonly CompletionLogprobs[]): CompletionLogprobs {
  return {
    tokens: parts.flatMap((p) => p.tokens),
    token_logprobs: parts.flatMap((p) => p.token_logprobs),
    top_logprobs: parts.flatMap((p) => p.top_logprobs),
    text_offset: parts.flatMap((p) => p.text_offset),
  };
}
