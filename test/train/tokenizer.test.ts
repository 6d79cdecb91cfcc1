/**
 * The trained family's committed tokenizer (train/tokenizer, train/README.md) through lib/tokenizer,
 * against HF `tokenizers` and transformers' apply_chat_template. Fixture:
 * /tmp/hfvenv/bin/python train/data/tokenizer_fixture.py (rerun after retraining the tokenizer).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplateError, Tokenizer, type ChatMessage } from '../../lib/tokenizer/index.js';

const TOKENIZER_DIR = fileURLToPath(new URL('../../train/tokenizer/', import.meta.url));
const SPECIAL_TOKENS = ['<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>'];

interface Expected {
  tokenizerSha256: string;
  texts: { name: string; text: string; ids: number[]; decoded: string; decodedSkipSpecial: string }[];
  chats: { name: string; messages: ChatMessage[]; addGenerationPrompt: boolean; rendered: string; ids: number[] }[];
}
const expected = JSON.parse(
  readFileSync(new URL('./tokenizer.expected.json', import.meta.url), 'utf8'),
) as Expected;

const ENGLISH = [
  'It was a bright cold day in April, and the clocks were striking thirteen.',
  '"Only a relative handful of such reports was received", the jury said -- twice.\n\nNew paragraph.',
  "She'd said we'll go; they've gone, haven't they? Yes: at 3:45 p.m. on Aug. 14, 1961 (or so).",
  '  Indented line\n\tTabbed line\r\nWindows line   \nTrailing spaces   ',
  'Prices rose 12.5% to $1,234.56 -- the highest since 1929! E-mail: a.b@c.org, #tag, ~x^2.',
  'Naïve café owners in São Paulo sell crème brûlée — “quoted” ‘text’ … and emoji 🙂.',
];

let tok: Tokenizer;
beforeAll(async () => {
  tok = await Tokenizer.fromDir(TOKENIZER_DIR);
});

it('the fixture was made from the committed tokenizer.json', () => {
  const sha = createHash('sha256').update(readFileSync(`${TOKENIZER_DIR}tokenizer.json`)).digest('hex');
  expect(sha, 'rerun train/data/tokenizer_fixture.py').toBe(expected.tokenizerSha256);
});

it('has vocab 8192 and the four special tokens at ids 0..3', () => {
  expect(tok.vocabSize).toBe(8192);
  expect(SPECIAL_TOKENS.map((t) => tok.tokenToId(t))).toEqual([0, 1, 2, 3]);
  expect([...tok.specialTokenIds].sort()).toEqual([0, 1, 2, 3]);
  expect(tok.bosTokenId).toBe(0);
  expect(tok.eosToken).toBe('<|endoftext|>');
  expect(tok.eosTokenIds).toEqual([0]);
});

it('adds no BOS or EOS to a plain prompt', () => {
  const ids = tok.encode('The jury said it did find that.');
  expect(ids.length).toBeGreaterThan(3);
  expect(ids).toEqual(tok.encode('The jury said it did find that.', { addSpecialTokens: false }));
  expect(ids).not.toContain(0);
});

describe.each(expected.texts.map((t) => [t.name, t] as const))('text %s', (_, want) => {
  it('encodes and decodes as HF tokenizers does', () => {
    expect(tok.encode(want.text)).toEqual(want.ids);
    expect(tok.decode(want.ids)).toBe(want.decoded);
    expect(tok.decode(want.ids, { skipSpecialTokens: true })).toBe(want.decodedSkipSpecial);
  });
});

it('round-trips varied English exactly', () => {
  for (const text of [...ENGLISH, ENGLISH.join('\n\n')]) expect(tok.decode(tok.encode(text))).toBe(text);
});

it('compresses plain English prose to over 3 characters a token', () => {
  const prose = ENGLISH.slice(0, 3).join(' ');
  expect(prose.length / tok.encode(prose).length).toBeGreaterThan(3);
});

it('round-trips arbitrary Unicode text (byte-level, no normaliser)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
      fc.pre(!SPECIAL_TOKENS.some((t) => text.includes(t)));
      expect(tok.decode(tok.encode(text))).toBe(text);
    }),
    { numRuns: 300, seed: 7 },
  );
});

describe('chat template', () => {
  it('renders turns as <|role|>\\n...<|end|>\\n with the generation prompt', () => {
    const messages = [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '4.' },
      { role: 'user', content: 'And 3+3?' },
    ];
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      '<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4.<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n',
    );
    expect(tok.applyChatTemplate(messages.slice(0, 2))).toBe('<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4.<|end|>\n');
    const ids = tok.encodeChat(messages, { addGenerationPrompt: true });
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 3)).toHaveLength(3);
    expect(ids.at(-2)).toBe(2);
  });

  describe.each(expected.chats.map((c) => [c.name, c] as const))('%s', (_, chat) => {
    it('renders and encodes as transformers does', () => {
      const options = { addGenerationPrompt: chat.addGenerationPrompt };
      expect(tok.applyChatTemplate(chat.messages, options)).toBe(chat.rendered);
      expect(tok.encodeChat(chat.messages, options)).toEqual(chat.ids);
    });
  });

  it('refuses a role the vocabulary has no token for, naming it', () => {
    expect(() => tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }])).toThrow(ChatTemplateError);
    expect(() => tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }])).toThrow(/Unsupported role system/);
  });
});
