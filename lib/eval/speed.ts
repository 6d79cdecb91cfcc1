/**
 * Generation speed through the engine, as `mixattn bench` measures it: per batch size, a
 * warm-up, then `promptTokens` of prompt per sequence prefilled in chunks and `newTokens`
 * greedy decode steps with the argmax on the backend (only token ids cross to the host).
 */
import type { Engine } from '../engine/engine.js';
import { greedyGenerate } from '../engine/greedy.js';

export interface SpeedOptions {
  readonly promptTokens: number;
  readonly newTokens: number;
  readonly batches: readonly number[];
  /** Most prompt tokens one prefill step carries (split evenly over the batch). */
  readonly stepTokens: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface SpeedRun {
  readonly batch: number;
  readonly promptTokens: number;
  readonly decodeSteps: number;
  readonly prefillSeconds: number;
  readonly prefillTokensPerS: number;
  readonly decodeSeconds: number;
  /** batch × decode steps / decode time (host loop included). */
  readonly decodeTokensPerS: number;
}

/** Prompts cut from `source` (cycled), a different stretch for each sequence. */
function prompts(source: readonly number[], batch: number, length: number): number[][] {
  return Array.from({ length: batch }, (_, b) => Array.from({ length }, (_, i) => source[(b * 997 + i) % source.length]));
}

export async function speed(engine: Engine, source: readonly number[], opts: SpeedOptions): Promise<SpeedRun[]> {
  if (source.length === 0) throw new RangeError('speed: no tokens to build prompts from');
  const runs: SpeedRun[] = [];
  for (const [k, batch] of opts.batches.entries()) {
    const prefillChunk = Math.max(16, Math.floor(opts.stepTokens / batch));
    // Warm-up at this batch size (kernels, GEMM plans, CUDA graphs of the decode shapes).
    await greedyGenerate(engine, prompts(source, batch, Math.min(opts.promptTokens, 64)), { maxNewTokens: 4, prefillChunk });
    const g = await greedyGenerate(engine, prompts(source, batch, opts.promptTokens), { maxNewTokens: opts.newTokens + 1, prefillChunk });
    runs.push({
      batch,
      promptTokens: opts.promptTokens,
      decodeSteps: g.decodeTokens / batch,
      prefillSeconds: g.prefillSeconds,
      prefillTokensPerS: g.prefillTokens / g.prefillSeconds,
      decodeSeconds: g.decodeSeconds,
      decodeTokensPerS: g.decodeTokens / g.decodeSeconds,
    });
    opts.onProgress?.(k + 1, opts.batches.length);
  }
  return runs;
}
