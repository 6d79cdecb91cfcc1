/** Fixture model directories and small helpers for the generation API tests. */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GenerateChunk } from '../../lib/api/index.js';
import type { Engine, StepEntry } from '../../lib/engine/engine.js';
import type { Reduced } from '../../lib/sampling/index.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));
export const fixture = (name: string): string => join(FIXTURES, name);

export interface ExpectedPrompt {
  ids: number[];
  greedy: number[];
}

/** The prompts and HF greedy continuations recorded with a fixture. */
export function expectedOf(name: string): ExpectedPrompt[] {
  return (JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as { prompts: ExpectedPrompt[] }).prompts;
}

/** A copy of a fixture without its tokenizer files (a model directory with no tokenizer). */
export function withoutTokenizer(name: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'mixattn-api-'));
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) copyFileSync(join(fixture(name), f), join(dir, f));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function drain(it: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const out: GenerateChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

export const idsOf = (chunks: readonly GenerateChunk[]): number[] => chunks.flatMap((c) => [...c.tokenIds]);
export const textOf = (chunks: readonly GenerateChunk[]): string => chunks.map((c) => c.text).join('');

/**
 * Puts `around` in every engine step, whichever path the step takes (Engine.step, or
 * Engine.stepSampled when the scheduler samples on the device): it sees the entries and runs
 * the step (or not) through `run`. Returns the function that takes it out again.
 */
export function aroundSteps(engine: Engine, around: (entries: readonly StepEntry[], run: () => Promise<unknown>) => Promise<unknown>): () => void {
  const step = engine.step.bind(engine);
  const stepSampled = engine.stepSampled.bind(engine);
  engine.step = ((entries: readonly StepEntry[]) => around(entries, () => step(entries))) as Engine['step'];
  engine.stepSampled = (entries, sampling) => around(entries, () => stepSampled(entries, sampling)) as Promise<Reduced[]>;
  return () => {
    engine.step = step;
    engine.stepSampled = stepSampled;
  };
}
