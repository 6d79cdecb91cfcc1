/**
 * The evaluation inputs: the held-out text and the retrieval set (contracts section A:
 * one JSON object a line, {id, prompt, answer, context_tokens, depth}). Every problem is a
 * one-line EvalInputError naming the file, and for JSONL the line and the field.
 */
import { readFileSync, statSync } from 'node:fs';

export class EvalInputError extends Error {
  override name = 'EvalInputError';
}

export interface RetrievalItem {
  readonly id: string;
  readonly prompt: string;
  /** What greedy decoding must produce first, e.g. " 4821". */
  readonly answer: string;
  /** Prompt length in the data set's tokenizer (the grouping key). */
  readonly contextTokens: number;
  /** Relative position of the asked needle in [0, 1]. */
  readonly depth: number;
  /** 1-based line of the file, for messages. */
  readonly line: number;
}

function readText(file: string, what: string): string {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new EvalInputError(`${what} ${file}: does not exist`);
  }
  if (!st.isFile()) throw new EvalInputError(`${what} ${file}: is not a file`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new EvalInputError(`${what} ${file}: cannot be read (${(e as Error).message})`);
  }
}

/** The held-out text (must hold some non-blank text). */
export function readHeldout(file: string): string {
  const text = readText(file, '--heldout');
  if (text.trim().length === 0) throw new EvalInputError(`--heldout ${file}: has no text`);
  return text;
}

const shown = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
};

/** Parses retrieval JSONL text; `file` names it in errors. Blank lines are skipped. */
export function parseRetrieval(text: string, file: string): RetrievalItem[] {
  const items: RetrievalItem[] = [];
  const ids = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim().length === 0) return;
    const at = `--retrieval ${file} line ${line}`;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new EvalInputError(`${at}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EvalInputError(`${at}: expected a JSON object`);
    const o = v as Record<string, unknown>;
    const field = (name: string, ok: boolean, expected: string): void => {
      if (!ok) throw new EvalInputError(`${at}: field "${name}" must be ${expected}, got ${name in o ? shown(o[name]) : 'nothing'}`);
    };
    field('id', typeof o.id === 'string' || (typeof o.id === 'number' && Number.isFinite(o.id)), 'a string or a number');
    field('prompt', typeof o.prompt === 'string' && o.prompt.length > 0, 'a non-empty string');
    field('answer', typeof o.answer === 'string' && o.answer.length > 0, 'a non-empty string');
    field('context_tokens', Number.isSafeInteger(o.context_tokens) && (o.context_tokens as number) > 0, 'a positive integer');
    field('depth', typeof o.depth === 'number' && o.depth >= 0 && o.depth <= 1, 'a number in [0, 1]');
    const id = String(o.id);
    const dup = ids.get(id);
    if (dup !== undefined) throw new EvalInputError(`${at}: field "id" ${shown(id)} repeats line ${dup}`);
    ids.set(id, line);
    items.push({ id, prompt: o.prompt as string, answer: o.answer as string, contextTokens: o.context_tokens as number, depth: o.depth as number, line });
  });
  if (items.length === 0) throw new EvalInputError(`--retrieval ${file}: has no items (one JSON object a line)`);
  return items;
}

export function readRetrieval(file: string): RetrievalItem[] {
  return parseRetrieval(readText(file, '--retrieval'), file);
}
