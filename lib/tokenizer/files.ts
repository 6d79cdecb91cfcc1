/** Reading a model directory's tokenizer files, with one-line errors that name the file and field. */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Contents of `dir/name`, or undefined when the file does not exist. */
async function readOptional(dir: string, name: string): Promise<string | undefined> {
  const path = join(dir, name);
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError(`${path}: cannot read (${(e as Error).message})`);
  }
}

/** Parses a JSON file that must hold an object; `label` names it in errors. */
export function parseJsonObject(text: string, label: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${label}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(value)) throw new TokenizerError(`${label}: expected a JSON object`);
  return value;
}

export interface TokenizerFiles {
  tokenizerJson: JsonObject;
  tokenizerConfig?: JsonObject;
  /** A template from chat_template.jinja or chat_template.json (they override tokenizer_config's). */
  chatTemplate?: string;
  /** Where the chat template came from, for error messages. */
  chatTemplateSource?: string;
  /** Path prefix used in error messages. */
  dir: string;
}

/** Reads tokenizer.json (required), tokenizer_config.json, chat_template.jinja / chat_template.json. */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new TokenizerError(`${dir}: model directory not found`);
  const tokenizerText = await readOptional(dir, 'tokenizer.json');
  if (tokenizerText === undefined) {
    throw new TokenizerError(`${join(dir, 'tokenizer.json')}: not found (a tokenizer.json is required)`);
  }
  const files: TokenizerFiles = { dir, tokenizerJson: parseJsonObject(tokenizerText, join(dir, 'tokenizer.json')) };
  const configText = await readOptional(dir, 'tokenizer_config.json');
  if (configText !== undefined) {
    files.tokenizerConfig = parseJsonObject(configText, join(dir, 'tokenizer_config.json'));
  }
  // transformers 5 writes chat_template.jinja; 4.4x wrote chat_template.json {"chat_template": "..."}.
  const jinja = await readOptional(dir, 'chat_template.jinja');
  if (jinja !== undefined) {
    files.chatTemplate = jinja;
    files.chatTemplateSource = join(dir, 'chat_template.jinja');
    return files;
  }
  const templateJsonPath = join(dir, 'chat_template.json');
  const templateJson = await readOptional(dir, 'chat_template.json');
  if (templateJson !== undefined) {
    const template = parseJsonObject(templateJson, templateJsonPath).chat_template;
    if (typeof template !== 'string') {
      throw new TokenizerError(`${templateJsonPath}: field "chat_template" must be a string`);
    }
    files.chatTemplate = template;
    files.chatTemplateSource = `${templateJsonPath} field "chat_template"`;
  }
  return files;
}
