/**
 * The model shipped with the package (models/mixattn-tiny: 6 layers trained under the `ma`
 * plan), which `demo`, `generate` and `chat` run when no --model is given. It is found from
 * the installed package's root, never the working directory, so `npx mixattn demo` works
 * from anywhere; MIXATTN_DEFAULT_MODEL points elsewhere (tests, or a model of your own).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../native.js';

export const DEFAULT_MODEL_NAME = 'mixattn-tiny';
export const DEFAULT_MODEL_ENV = 'MIXATTN_DEFAULT_MODEL';

/** Where the default model lives: $MIXATTN_DEFAULT_MODEL, else <package root>/models/mixattn-tiny. */
export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env[DEFAULT_MODEL_ENV];
  return override ? resolve(override) : join(packageRoot(), 'models', DEFAULT_MODEL_NAME);
}

/** The default model is not there (a development checkout before the trained model is added). */
export class DefaultModelMissingError extends Error {
  override name = 'DefaultModelMissingError';
}

/**
 * The default model's directory, or a one-line error saying what is missing and how to name
 * a model instead. Only config.json is looked for: the loader names any other missing file.
 */
export function requireDefaultModel(command: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = defaultModelDir(env);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const where = env[DEFAULT_MODEL_ENV] ? `${dir} (from ${DEFAULT_MODEL_ENV})` : dir;
  throw new DefaultModelMissingError(
    `${command}: the built-in model is missing: no config.json in ${where}; pass --model DIR (a Hugging Face model directory)`,
  );
}
