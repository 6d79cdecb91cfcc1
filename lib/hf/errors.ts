/**
 * The one error type of the HF loaders. Every message is one line that starts with the file
 * it is about and names the tensor or config field at fault, so a user can fix the input
 * without reading code; `file`, `tensor` and `field` carry the same facts for programs.
 */
export interface LoadErrorWhere {
  /** The file (or directory) at fault, as the caller named it. */
  readonly file: string;
  readonly tensor?: string;
  readonly field?: string;
}

export class ModelLoadError extends Error {
  readonly file: string;
  readonly tensor?: string;
  readonly field?: string;

  constructor(where: LoadErrorWhere, detail: string) {
    super(`${where.file}: ${detail}`.replace(/\s*\n\s*/g, ' '));
    this.name = 'ModelLoadError';
    this.file = where.file;
    if (where.tensor !== undefined) this.tensor = where.tensor;
    if (where.field !== undefined) this.field = where.field;
  }
}

/** Short JSON of an offending value for messages (never more than ~60 characters). */
export function shown(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
