/**
 * Our encode/decode/chat templates against HF's Rust `tokenizers` and transformers'
 * apply_chat_template. Fixtures: /tmp/tokvenv/bin/python scripts/tokenizer_parity.py
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { ALL_DIRS, TEXTS, expectedFor } from './helpers.js';

describe.each(Object.keys(ALL_DIRS))('%s tokenizer matches HF', (name) => {
  const expected = expectedFor(name);
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(ALL_DIRS[name]);
  });

  it('covers every text of texts.json', () => {
    expect(expected.texts.map((t) => t.name)).toEqual(TEXTS.map((t) => t.name));
  });

  describe.each(TEXTS.map((t, i) => [t.name, t.text, i] as const))('%s', (_, text, i) => {
    const want = expected.texts[i];
    it('encodes with and without special tokens', () => {
      expect(tok.encode(text)).toEqual(want.ids);
      expect(tok.encode(text, { addSpecialTokens: false })).toEqual(want.idsNoSpecial);
    });
    it('decodes, keeping or skipping special tokens, and round-trips', () => {
      expect(tok.decode(want.ids)).toBe(want.decoded);
      expect(tok.decode(want.ids, { skipSpecialTokens: true })).toBe(want.decodedSkipSpecial);
      expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(want.roundTrip);
    });
  });

  if (expected.chats.length > 0) {
    describe.each(expected.chats.map((c) => [c.name, c] as const))('chat %s', (_, chat) => {
      const options = { addGenerationPrompt: chat.addGenerationPrompt, tools: chat.tools, ...chat.vars };
      it('renders as transformers does', () => {
        expect(tok.applyChatTemplate(chat.messages, options)).toBe(chat.rendered);
      });
      it('encodes the rendered text as transformers does (no second BOS)', () => {
        expect(tok.encodeChat(chat.messages, options)).toEqual(chat.ids);
      });
    });
  }
});

it('the byte-level tiny tokenizer is lossless on every text', async () => {
  const tok = await Tokenizer.fromDir(ALL_DIRS.tiny);
  for (const { text } of TEXTS) expect(tok.decode(tok.encode(text, { addSpecialTokens: false }))).toBe(text);
});
