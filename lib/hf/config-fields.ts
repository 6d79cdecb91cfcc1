/**
 * Typed access to the fields of a JSON config file. Absent (or null where null means "unset")
 * fields take the default the HF config class gives them, so we read a config the way
 * transformers does; a present field of the wrong type is an error naming the file and field.
 */
import { ModelLoadError, shown } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export class ConfigFields {
  constructor(
    /** The file the object came from, for messages. */
    readonly file: string,
    readonly obj: JsonObject,
    /** Prefix for nested objects, e.g. 'rope_parameters.full_attention.'. */
    readonly prefix = '',
  ) {}

  has(field: string): boolean {
    return this.obj[field] !== undefined && this.obj[field] !== null;
  }

  raw(field: string): Json | undefined {
    return this.obj[field];
  }

  fail(field: string, detail: string): never {
    throw new ModelLoadError({ file: this.file, field: this.prefix + field }, `field '${this.prefix}${field}' ${detail}`);
  }

  /** A positive integer (or >= 0 with min 0). */
  int(field: string, dflt?: number, min = 1): number {
    const v = this.obj[field];
    if (v === undefined || v === null) return dflt ?? this.fail(field, 'is missing');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      this.fail(field, `must be an integer >= ${min} (got ${shown(v)})`);
    }
    return v;
  }

  /** An integer or null (null meaning "off", e.g. sliding_window); `dflt` when absent. */
  intOrNull(field: string, dflt: number | null, min = 1): number | null {
    if (!(field in this.obj)) return dflt;
    return this.obj[field] === null ? null : this.int(field, undefined, min);
  }

  /** A finite positive number. */
  num(field: string, dflt?: number): number {
    const v = this.obj[field];
    if (v === undefined || v === null) return dflt ?? this.fail(field, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(field, `must be a positive number (got ${shown(v)})`);
    return v;
  }

  /** A positive number, or 0 when null/absent (soft-caps: null means off). */
  numOrOff(field: string, dflt: number | null): number {
    if (!(field in this.obj)) return dflt ?? 0;
    return this.obj[field] === null ? 0 : this.num(field);
  }

  bool(field: string, dflt: boolean): boolean {
    const v = this.obj[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false (got ${shown(v)})`);
    return v;
  }

  str(field: string, dflt?: string): string {
    const v = this.obj[field];
    if (v === undefined || v === null) return dflt ?? this.fail(field, 'is missing');
    if (typeof v !== 'string') this.fail(field, `must be a string (got ${shown(v)})`);
    return v;
  }

  /** A nested object, or undefined when absent/null. */
  object(field: string): ConfigFields | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) this.fail(field, `must be an object (got ${shown(v)})`);
    return new ConfigFields(this.file, v, `${this.prefix}${field}.`);
  }

  /** An array of exactly `length` elements, or undefined when absent/null. */
  array(field: string, length: number, lengthField: string): Json[] | undefined {
    const v = this.obj[field];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(field, `must be an array (got ${shown(v)})`);
    if (v.length !== length) this.fail(field, `has ${v.length} entries but ${lengthField}=${length}`);
    return v;
  }
}
