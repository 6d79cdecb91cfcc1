import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatTemplateError, Tokenizer, TokenizerError } from '../../lib/tokenizer/index.js';
import { REAL_DIRS, TINY_DIR, readJson } from './helpers.js';

type Json = Record<string, unknown>;
const tinyJson = readJson<Json>(join(TINY_DIR, 'tokenizer.json'));
const tinyConfig = readJson<Json>(join(TINY_DIR, 'tokenizer_config.json'));
const tiny = (config: Json = {}, json: Json = {}, chatTemplate?: string) =>
  Tokenizer.fromFiles({ tokenizerJson: { ...tinyJson, ...json }, tokenizerConfig: { ...tinyConfig, ...config }, chatTemplate });

const user = (content: string) => ({ role: 'user', content });

describe('Tokenizer (tiny fixture)', () => {
  it('reads the special tokens and sizes', async () => {
    const tok = await Tokenizer.fromDir(TINY_DIR);
    expect(tok.vocabSize).toBe(300);
    expect(tok.bosToken).toBe('<|bos|>');
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosToken).toBe('<|eos|>'); // written as an AddedToken object
    expect(tok.eosTokenIds).toEqual([2]);
    expect([...tok.specialTokenIds].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(tok.tokenToId('<|user|>')).toBe(4);
    expect(tok.idToToken(4)).toBe('<|user|>');
    expect(tok.tokenToId('no such token')).toBeUndefined();
    expect(tok.hasChatTemplate).toBe(true);
  });

  it('adds one BOS: the post-processor adds it and add_bos_token does not add a second', () => {
    const tok = tiny();
    const ids = tok.encode('hello');
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 1)).toHaveLength(1);
    expect(tok.encode('hello', { addSpecialTokens: false })).toEqual(ids.slice(1));
  });

  it('applies add_bos_token / add_eos_token where the post-processor does not add them', () => {
    const plain = tiny({}, { post_processor: null }).encode('hello', { addSpecialTokens: false });
    expect(tiny({ add_bos_token: false }, { post_processor: null }).encode('hello')).toEqual(plain);
    expect(tiny({}, { post_processor: null }).encode('hello')).toEqual([1, ...plain]);
    expect(tiny({ add_eos_token: true }, { post_processor: null }).encode('hello')).toEqual([1, ...plain, 2]);
    expect(tiny({ add_bos_token: false, add_eos_token: true }).encode('hello')).toEqual([1, ...plain, 2]);
    expect(tiny({ add_eos_token: true }, { post_processor: null }).encode('hello', { addSpecialTokens: false })).toEqual(plain);
  });

  it('works without tokenizer_config.json: no BOS/EOS known, no chat template', () => {
    const tok = Tokenizer.fromFiles({ tokenizerJson: tinyJson });
    expect(tok.bosTokenId).toBeUndefined();
    expect(tok.eosTokenIds).toEqual([]);
    expect(tok.hasChatTemplate).toBe(false);
    expect(tok.decode(tok.encode('héllo wörld'))).toBe('<|bos|>héllo wörld');
  });

  it('merges EOS ids from generation_config without duplicates', () => {
    const tok = tiny();
    tok.addEosTokenIds([2, 6]);
    tok.addEosTokenIds(6);
    expect(tok.eosTokenIds).toEqual([2, 6]);
    expect(() => tok.addEosTokenIds(300)).toThrow(/outside the vocabulary \(size 300\)/);
  });

  it('decodes, skipping special tokens on request; empty ids give empty text', () => {
    const tok = tiny();
    const ids = tok.encodeChat([user('hi')], { addGenerationPrompt: true });
    expect(tok.decode(ids)).toBe('<|bos|><|user|>hi<|end|>\n<|assistant|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hi\n');
    expect(tok.decode([])).toBe('');
    expect(() => tok.decode([5, 300])).toThrow(/ids\[1\] = 300 is outside the vocabulary/);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
  });
});

describe('chat templates', () => {
  it('renders with messages, add_generation_prompt and bos_token, and encodes without a second BOS', () => {
    const tok = tiny();
    const text = tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, user(' hi ')], { addGenerationPrompt: true });
    expect(text).toBe('<|bos|><|system|>Be brief.<|end|>\n<|user|>hi<|end|>\n<|assistant|>');
    expect(tok.applyChatTemplate([user('hi')])).toBe('<|bos|><|user|>hi<|end|>\n');
    expect(tok.encodeChat([user('hi')])).toEqual(tok.encode('<|bos|><|user|>hi<|end|>\n', { addSpecialTokens: false }));
  });

  it('passes tools (none by default), eos_token and extra variables', () => {
    const template =
      "{% if tools is none %}no tools{% else %}{{ tools | length }} tools{% endif %}|{{ eos_token }}|{{ enable_thinking }}|{{ messages | length }}";
    const tok = tiny({}, {}, template);
    expect(tok.applyChatTemplate([user('x')], { enable_thinking: false })).toBe('no tools|<|eos|>|false|1');
    expect(tok.applyChatTemplate([user('x')], { tools: [{ name: 'f' }] })).toBe('1 tools|<|eos|>||1');
  });

  it('turns raise_exception into a ChatTemplateError', () => {
    const tok = tiny();
    const call = () => tok.applyChatTemplate([{ role: 'tool', content: 'x' }]);
    expect(call).toThrow(ChatTemplateError);
    expect(call).toThrow(/tokenizer_config.json field "chat_template": chat template failed: Unknown role: tool/);
  });

  it('names the source of a template that does not parse', () => {
    expect(() => tiny({}, {}, '{% for %}').applyChatTemplate([user('x')])).toThrow(
      /^chat_template: cannot parse the chat template/,
    );
  });

  it('checks the messages', () => {
    const tok = tiny();
    expect(() => tok.applyChatTemplate([user('a'), { content: 'b' } as never])).toThrow(/messages\[1\]\.role must be a string/);
    expect(() => tok.applyChatTemplate('hi' as never)).toThrow(/messages must be an array/);
  });

  it('picks "default" from a list of named templates, and "tool_use" when tools are given', () => {
    const tok = tiny({
      chat_template: [
        { name: 'tool_use', template: 'tools' },
        { name: 'default', template: 'plain' },
      ],
    });
    expect(tok.applyChatTemplate([user('x')])).toBe('plain');
    expect(tok.applyChatTemplate([user('x')], { tools: [{}] })).toBe('tools');
    const noDefault = tiny({ chat_template: [{ name: 'rag', template: 'r' }] });
    expect(() => noDefault.applyChatTemplate([user('x')])).toThrow(/no template named "default" among "rag"/);
    expect(() => tiny({ chat_template: [{ name: 'x' }] })).toThrow(/field "chat_template"\[0\]: expected \{"name": string, "template": string\}/);
    expect(() => tiny({ chat_template: 3 })).toThrow(/field "chat_template": must be a string or a list/);
  });

  it('tells that a model has no chat template when messages are given', async () => {
    const tok = await Tokenizer.fromDir(REAL_DIRS.llama2);
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate([user('x')])).toThrow(/tokenizer_config.json: the model has no chat template/);
    expect(tok.encode('x')).toEqual([1, tok.tokenToId('▁x')]); // plain prompts still work
  });
});

describe('model directories', () => {
  let root: string;
  let n = 0;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'mixattn-tok-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A directory holding the given files (string contents, or objects written as JSON). */
  function dir(files: Record<string, string | object>): string {
    const d = join(root, `m${n++}`);
    mkdirSync(d);
    for (const [name, body] of Object.entries(files)) {
      writeFileSync(join(d, name), typeof body === 'string' ? body : JSON.stringify(body));
    }
    return d;
  }

  it('reads chat_template.jinja, which overrides tokenizer_config', async () => {
    const d = dir({ 'tokenizer.json': tinyJson, 'tokenizer_config.json': tinyConfig, 'chat_template.jinja': 'J{{ messages[0].content }}' });
    expect((await Tokenizer.fromDir(d)).applyChatTemplate([user('x')])).toBe('Jx');
  });

  it('reads chat_template.json', async () => {
    const d = dir({ 'tokenizer.json': tinyJson, 'chat_template.json': { chat_template: 'C{{ bos_token }}' } });
    expect((await Tokenizer.fromDir(d)).applyChatTemplate([user('x')])).toBe('C');
    const bad = dir({ 'tokenizer.json': tinyJson, 'chat_template.json': { template: 'x' } });
    await expect(Tokenizer.fromDir(bad)).rejects.toThrow(`${join(bad, 'chat_template.json')}: field "chat_template" must be a string`);
  });

  const cases: [string, Record<string, string | object>, (d: string) => string][] = [
    ['missing tokenizer.json', { 'tokenizer_config.json': tinyConfig }, (d) => `${join(d, 'tokenizer.json')}: not found`],
    ['corrupt tokenizer.json', { 'tokenizer.json': '{"model": ' }, (d) => `${join(d, 'tokenizer.json')}: not valid JSON`],
    ['tokenizer.json not an object', { 'tokenizer.json': '[1]' }, (d) => `${join(d, 'tokenizer.json')}: expected a JSON object`],
    ['tokenizer.json without model', { 'tokenizer.json': { added_tokens: [] } }, (d) => `${join(d, 'tokenizer.json')}: field "model" is missing`],
    ['bad added_tokens', { 'tokenizer.json': { ...tinyJson, added_tokens: [{ id: 'x' }] } }, (d) => `${join(d, 'tokenizer.json')}: added_tokens[0] needs`],
    ['unknown model type', { 'tokenizer.json': { ...tinyJson, model: { type: 'Magic' } } }, (d) => `${join(d, 'tokenizer.json')}: cannot build the tokenizer (Unknown TokenizerModel type: Magic)`],
    ['corrupt tokenizer_config.json', { 'tokenizer.json': tinyJson, 'tokenizer_config.json': '{,}' }, (d) => `${join(d, 'tokenizer_config.json')}: not valid JSON`],
    ['bos_token of a wrong type', { 'tokenizer.json': tinyJson, 'tokenizer_config.json': { bos_token: 7 } }, (d) => `${join(d, 'tokenizer_config.json')}: field "bos_token" must be a string or {"content": string}`],
    ['eos_token not in the vocabulary', { 'tokenizer.json': tinyJson, 'tokenizer_config.json': { eos_token: '</s>' } }, (d) => `${join(d, 'tokenizer_config.json')}: field "eos_token" is "</s>", which ${join(d, 'tokenizer.json')} does not have`],
    ['add_bos_token not a boolean', { 'tokenizer.json': tinyJson, 'tokenizer_config.json': { bos_token: '<|bos|>', add_bos_token: 'yes' } }, (d) => `${join(d, 'tokenizer_config.json')}: field "add_bos_token" must be true or false`],
  ];
  it.each(cases)('%s: one error naming the file and field', async (_, files, message) => {
    const d = dir(files);
    const err = await Tokenizer.fromDir(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as Error).message).toContain(message(d));
    expect((err as Error).message).not.toContain('\n');
  });

  it('a missing directory', async () => {
    await expect(Tokenizer.fromDir(join(root, 'nope'))).rejects.toThrow(`${join(root, 'nope')}: model directory not found`);
  });

  it('fromFiles names the files without a directory', () => {
    expect(() => Tokenizer.fromFiles({ tokenizerJson: {} })).toThrow(/^tokenizer.json: field "model" is missing/);
    expect(() => Tokenizer.fromFiles({ tokenizerJson: tinyJson, tokenizerConfig: [] as never })).toThrow(
      /^tokenizer_config.json: expected a JSON object/,
    );
  });
});
