/**
 * Streaming detokenization that never emits a broken UTF-8 sequence.
 *
 * As vLLM and TGI do: keep a window of ids [prefixOffset, end) whose first part [prefixOffset,
 * readOffset) was already emitted; decode the window and its emitted part, and emit the difference
 * unless the window's text ends in U+FFFD (a character still missing bytes: a byte-fallback token
 * like <0xE2>, or a byte-level token holding part of a character). Decoding with the emitted
 * tokens as context keeps the spaces that SentencePiece-style decoders strip at a text's start.
 */
import type { Tokenizer } from './tokenizer.js';

const REPLACEMENT = '\uFFFD';
/** Prompt tokens decoded as context for the first generated token (vLLM uses 5 too). */
const PROMPT_CONTEXT = 5;

export interface IncrementalDetokenizerOptions {
  skipSpecialTokens?: boolean;
  /** The prompt: its last tokens give context (e.g. the space before the first generated word). */
  promptIds?: readonly number[];
}

export class IncrementalDetokenizer {
  private readonly skipSpecialTokens: boolean;
  /** The window: context and emitted ids, then ids not emitted yet. */
  private ids: number[];
  private readOffset: number;
  /** Text of ids[0, readOffset), the already emitted part of the window. */
  private readText: string;

  constructor(
    private readonly tokenizer: Tokenizer,
    options: IncrementalDetokenizerOptions = {},
  ) {
    this.skipSpecialTokens = options.skipSpecialTokens ?? false;
    this.ids = (options.promptIds ?? []).slice(-PROMPT_CONTEXT);
    // A prompt ending inside a character decodes to one trailing U+FFFD (a stray byte at the
    // window's start gives a stable one): that character is emitted whole once complete.
    this.readOffset = this.ids.length;
    this.readText = this.decode(0, this.readOffset).replace(/\uFFFD$/, '');
  }

  /** Adds one generated id; returns the text that became safe to emit (often ''). */
  push(id: number): string {
    this.ids.push(id);
    try {
      return this.emit(false);
    } catch (e) {
      this.ids.pop(); // an invalid id leaves the state as it was
      throw e;
    }
  }

  /** Ends the stream: the text still held back (e.g. an incomplete last character, as decode gives it). */
  flush(): string {
    return this.emit(true);
  }

  private emit(final: boolean): string {
    const text = this.decode(0, this.ids.length);
    if (text.length <= this.readText.length || (!final && text.endsWith(REPLACEMENT))) return '';
    const out = text.slice(this.readText.length);
    // The emitted ids become the next window's context.
    this.ids = this.ids.slice(this.readOffset);
    this.readOffset = this.ids.length;
    this.readText = this.decode(0, this.readOffset);
    return out;
  }

  private decode(start: number, end: number): string {
    return this.tokenizer.decode(this.ids.slice(start, end), { skipSpecialTokens: this.skipSpecialTokens });
  }
}
