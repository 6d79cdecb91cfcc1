import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { IncrementalDetokenizer, Tokenizer } from '../../lib/tokenizer/index.js';
import { ALL_DIRS, TEXTS } from './helpers.js';

/** Streams ids through a detokenizer; returns the chunks, flush last. */
function stream(tok: Tokenizer, ids: readonly number[], options: { skipSpecialTokens?: boolean; promptIds?: number[] } = {}) {
  const detok = new IncrementalDetokenizer(tok, options);
  const chunks = ids.map((id) => detok.push(id));
  chunks.push(detok.flush());
  return chunks;
}

const isWellFormed = (s: string): boolean => Buffer.from(s, 'utf8').toString('utf8') === s;

/** Ids biased towards the ones that split characters: single bytes and special tokens. */
const ID_RANGES: Record<string, { bytes: [number, number]; special: [number, number] }> = {
  tiny: { bytes: [7, 262], special: [0, 6] }, // 256 byte-level tokens after 7 added tokens
  llama2: { bytes: [3, 258], special: [0, 2] }, // <0x00> .. <0xFF> byte-fallback tokens
  qwen3: { bytes: [0, 255], special: [151643, 151668] }, // byte-level single bytes; added tokens
};

describe.each(Object.keys(ALL_DIRS))('IncrementalDetokenizer with the %s tokenizer', (name) => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(ALL_DIRS[name]);
  });
  const { bytes, special } = ID_RANGES[name];
  const idArb = () =>
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: bytes[0], max: bytes[1] }) },
      { weight: 1, arbitrary: fc.integer({ min: special[0], max: special[1] }) },
      { weight: 3, arbitrary: fc.integer({ min: 0, max: tok.vocabSize - 1 }) },
    );

  it('concatenated chunks equal decode(ids) for random ids', () => {
    fc.assert(
      fc.property(fc.array(idArb(), { maxLength: 40 }), fc.boolean(), (ids, skipSpecialTokens) => {
        const chunks = stream(tok, ids, { skipSpecialTokens });
        expect(chunks.join('')).toBe(tok.decode(ids, { skipSpecialTokens }));
        // Only flush may end in an incomplete character.
        for (const chunk of chunks.slice(0, -1)) expect(chunk.endsWith('\uFFFD')).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('never emits a broken character while streaming real text', () => {
    const text = fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => !s.includes('\uFFFD') && isWellFormed(s));
    fc.assert(
      fc.property(text, (s) => {
        const ids = tok.encode(s, { addSpecialTokens: false });
        const chunks = stream(tok, ids);
        for (const chunk of chunks) expect(chunk).not.toContain('\uFFFD');
        expect(chunks.join('')).toBe(tok.decode(ids));
      }),
      { numRuns: 200 },
    );
  });

  it.each(TEXTS.filter((t) => t.text.length > 0).map((t) => [t.name, t.text]))(
    'streams %s without replacement characters',
    (_, text) => {
      const ids = tok.encode(text);
      const chunks = stream(tok, ids);
      expect(chunks.join('')).toBe(tok.decode(ids));
      for (const chunk of chunks) expect(chunk).not.toContain('\uFFFD');
    },
  );

  it('continues a prompt: emits the text after it, spaces included', () => {
    fc.assert(
      fc.property(fc.constantFrom(...TEXTS.map((t) => t.text)), fc.nat(), (text, cut) => {
        const ids = tok.encode(text, { addSpecialTokens: false });
        const k = ids.length === 0 ? 0 : cut % (ids.length + 1);
        const full = tok.decode(ids);
        // The prompt's text up to its last complete character.
        const promptText = tok.decode(ids.slice(0, k)).replace(/\uFFFD$/, '');
        expect(full.startsWith(promptText)).toBe(true);
        const chunks = stream(tok, ids.slice(k), { promptIds: ids.slice(0, k) });
        expect(chunks.join('')).toBe(full.slice(promptText.length));
      }),
      { numRuns: 200 },
    );
  });
});

describe('IncrementalDetokenizer', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(ALL_DIRS.llama2);
  });

  it('holds byte-fallback tokens until the character is complete', () => {
    const euro = ['<0xE2>', '<0x82>', '<0xAC>'].map((t) => tok.tokenToId(t)!);
    const detok = new IncrementalDetokenizer(tok);
    expect(detok.push(tok.tokenToId('▁costs')!)).toBe('costs');
    expect(detok.push(euro[0])).toBe('');
    expect(detok.push(euro[1])).toBe('');
    expect(detok.push(euro[2])).toBe(' €'.slice(1));
    expect(detok.flush()).toBe('');
  });

  it('keeps the space before the first generated word after a prompt', () => {
    const prompt = tok.encode('Hello');
    const detok = new IncrementalDetokenizer(tok, { promptIds: prompt });
    expect(detok.push(tok.tokenToId('▁world')!)).toBe(' world');
  });

  it('flush emits an incomplete character as decode does', () => {
    const detok = new IncrementalDetokenizer(tok);
    expect(detok.push(tok.tokenToId('<0xE2>')!)).toBe('');
    expect(detok.flush()).toBe('\uFFFD');
    expect(detok.flush()).toBe('');
  });

  it('rejects an id outside the vocabulary and keeps its state', () => {
    const detok = new IncrementalDetokenizer(tok);
    expect(detok.push(tok.tokenToId('▁Hi')!)).toBe('Hi');
    expect(() => detok.push(tok.vocabSize)).toThrow(RangeError);
    expect(detok.push(tok.tokenToId('!')!)).toBe('!');
  });
});
