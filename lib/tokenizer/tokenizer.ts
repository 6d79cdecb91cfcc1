/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json + chat template) on top of
 * @huggingface/tokenizers, giving the ids HF's Rust `tokenizers` gives (test/tokenizer/parity).
 */
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ChatTemplates, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
import { TokenizerError, isObject, readTokenizerFiles, type JsonObject } from './files.js';

export interface EncodeOptions {
  /** BOS/EOS etc. as tokenizer.json's post-processor and tokenizer_config's add_bos_token/add_eos_token say. Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens (added tokens marked special). Default false. */
  skipSpecialTokens?: boolean;
}

export interface TokenizerSources {
  tokenizerJson: object;
  tokenizerConfig?: object;
  /** A chat template that overrides tokenizer_config's (the contents of chat_template.jinja). */
  chatTemplate?: string;
}

interface Labels {
  json: string;
  config: string;
  template: string;
}

/** The content of a special-token field: a string, an AddedToken object {content}, or null. */
function tokenContent(config: JsonObject, field: string, label: string): string | undefined {
  const value = config[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  throw new TokenizerError(`${label}: field "${field}" must be a string or {"content": string}`);
}

function optionalBoolean(config: JsonObject, field: string, label: string): boolean | undefined {
  const value = config[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new TokenizerError(`${label}: field "${field}" must be true or false`);
  return value;
}

/** tokenizer.json checked enough for @huggingface/tokenizers, with absent optional stages as null. */
function checkTokenizerJson(json: object, label: string): JsonObject {
  if (!isObject(json)) throw new TokenizerError(`${label}: expected a JSON object`);
  if (!isObject(json.model)) throw new TokenizerError(`${label}: field "model" is missing or not an object`);
  const addedTokens = json.added_tokens ?? [];
  if (!Array.isArray(addedTokens)) throw new TokenizerError(`${label}: field "added_tokens" must be a list`);
  addedTokens.forEach((t, i) => {
    if (!isObject(t) || typeof t.content !== 'string' || !Number.isInteger(t.id)) {
      throw new TokenizerError(`${label}: added_tokens[${i}] needs a string "content" and an integer "id"`);
    }
  });
  const stages = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;
  return { ...json, added_tokens: addedTokens, ...Object.fromEntries(stages.map((s) => [s, json[s] ?? null])) };
}

export class Tokenizer {
  /** Number of ids: one more than the largest id of the vocabulary and added tokens. */
  readonly vocabSize: number;
  readonly bosToken?: string;
  readonly bosTokenId?: number;
  readonly eosToken?: string;
  /** Ids of added tokens marked special. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Whether a chat template was found (applyChatTemplate throws otherwise). */
  readonly hasChatTemplate: boolean;

  private readonly hf: HfTokenizer;
  private readonly eosIds: number[] = [];
  private readonly addBos: boolean;
  private readonly addEos: boolean;
  private readonly templates?: ChatTemplates;
  private readonly templateTokens: Record<string, string> = {};
  private readonly noTemplateMessage: string;

  /** Reads tokenizer.json, tokenizer_config.json and chat_template.jinja / chat_template.json from `dir`. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const files = await readTokenizerFiles(dir);
    const labels: Labels = {
      json: join(dir, 'tokenizer.json'),
      config: join(dir, 'tokenizer_config.json'),
      template: files.chatTemplateSource ?? `${join(dir, 'tokenizer_config.json')} field "chat_template"`,
    };
    return new Tokenizer(files, labels);
  }

  /** From already parsed files (errors name tokenizer.json / tokenizer_config.json). */
  static fromFiles(sources: TokenizerSources): Tokenizer {
    const labels: Labels = {
      json: 'tokenizer.json',
      config: 'tokenizer_config.json',
      template: sources.chatTemplate !== undefined ? 'chat_template' : 'tokenizer_config.json field "chat_template"',
    };
    if (sources.tokenizerConfig !== undefined && !isObject(sources.tokenizerConfig)) {
      throw new TokenizerError(`${labels.config}: expected a JSON object`);
    }
    return new Tokenizer({ ...sources, tokenizerConfig: sources.tokenizerConfig as JsonObject | undefined }, labels);
  }

  private constructor(sources: TokenizerSources & { tokenizerConfig?: JsonObject }, labels: Labels) {
    const json = checkTokenizerJson(sources.tokenizerJson, labels.json);
    const config: JsonObject = sources.tokenizerConfig ?? {};
    const special: Record<string, string | undefined> = {};
    for (const field of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      special[field] = tokenContent(config, field, labels.config);
      if (special[field] !== undefined) this.templateTokens[field] = special[field];
    }
    const extra = config.additional_special_tokens;
    // The library reads a few tokenizer_config fields; give it plain strings for the special tokens.
    const libConfig = {
      ...config,
      ...special,
      additional_special_tokens: Array.isArray(extra)
        ? extra.map((t) => (isObject(t) ? t.content : t)).filter((t) => typeof t === 'string')
        : [],
    };
    try {
      this.hf = new HfTokenizer(json, libConfig);
    } catch (e) {
      throw new TokenizerError(`${labels.json}: cannot build the tokenizer (${(e as Error).message})`);
    }

    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.specialTokenIds = new Set(
      (json.added_tokens as JsonObject[]).filter((t) => t.special === true).map((t) => t.id as number),
    );
    const idOf = (field: string): number | undefined => {
      const token = special[field];
      if (token === undefined) return undefined;
      const id = this.tokenToId(token);
      if (id === undefined) {
        throw new TokenizerError(`${labels.config}: field "${field}" is "${token}", which ${labels.json} does not have`);
      }
      return id;
    };
    this.bosToken = special.bos_token;
    this.bosTokenId = idOf('bos_token');
    this.eosToken = special.eos_token;
    const eosId = idOf('eos_token');
    if (eosId !== undefined) this.eosIds.push(eosId);

    // As HF: add_bos_token/add_eos_token add the token where tokenizer.json's post-processor does not.
    const probe = this.hf.encode('a', { add_special_tokens: true }).ids;
    this.addBos =
      optionalBoolean(config, 'add_bos_token', labels.config) === true &&
      this.bosTokenId !== undefined &&
      probe[0] !== this.bosTokenId;
    this.addEos =
      optionalBoolean(config, 'add_eos_token', labels.config) === true &&
      eosId !== undefined &&
      probe[probe.length - 1] !== eosId;

    const template = sources.chatTemplate ?? config.chat_template;
    if (template !== undefined && template !== null) this.templates = ChatTemplates.parse(template, labels.template);
    this.hasChatTemplate = this.templates !== undefined;
    this.noTemplateMessage =
      `${labels.config}: the model has no chat template (no "chat_template" field, ` +
      'chat_template.jinja or chat_template.json); give a plain prompt instead of messages';
  }

  /** Ids that end generation: tokenizer_config's eos_token plus any added with addEosTokenIds. */
  get eosTokenIds(): readonly number[] {
    return this.eosIds;
  }

  /** Merges more end-of-sequence ids (e.g. generation_config.json's eos_token_id, a number or a list). */
  addEosTokenIds(ids: number | readonly number[]): void {
    for (const id of typeof ids === 'number' ? [ids] : ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`eos token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
      }
      if (!this.eosIds.includes(id)) this.eosIds.push(id);
    }
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('encode: text must be a string');
    const addSpecial = options.addSpecialTokens ?? true;
    const ids = this.hf.encode(text, { add_special_tokens: addSpecial }).ids;
    if (addSpecial && this.addBos) ids.unshift(this.bosTokenId!);
    if (addSpecial && this.addEos) ids.push(this.eosIds[0]);
    return ids;
  }

  /** Text of the ids, as HF decodes it (no clean_up_tokenization_spaces, as inference servers stream). */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`decode: ids[${i}] = ${id} is outside the vocabulary (size ${this.vocabSize})`);
      }
    });
    if (ids.length === 0) return '';
    return this.hf.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** The conversation as the model's chat template renders it (HF apply_chat_template, tokenize=False). */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.templates) throw new TokenizerError(this.noTemplateMessage);
    return this.templates.render(messages, options, this.templateTokens);
  }

  /** Ids of the rendered conversation; the template writes BOS itself, so no special tokens are added. */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }
}
