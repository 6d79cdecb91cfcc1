/** Runs the engine on token sequences under a chosen step schedule and collects logits. */
import { Engine, type EngineOptions } from '../../lib/engine/engine.js';
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { randomWeights, type WeightDtype } from '../../lib/model/random-weights.js';

/** Tokens per step for each sequence: whole prompt, fixed chunks, or one at a time. */
export type Schedule = 'whole' | 'decode' | { chunk: number } | { pattern: number[] };

function stepSizes(n: number, s: Schedule): number[] {
  if (s === 'whole') return [n];
  const sizes: number[] = [];
  const pattern = s === 'decode' ? [1] : 'chunk' in s ? [s.chunk] : s.pattern;
  for (let done = 0, i = 0; done < n; i++) {
    const k = Math.min(pattern[i % pattern.length], n - done);
    sizes.push(k);
    done += k;
  }
  return sizes;
}

/**
 * Feeds every sequence through the engine, all sequences in the same steps (a ragged batch),
 * each with its own schedule; returns the logits of every position of every sequence.
 */
export async function engineLogits(
  engine: Engine,
  seqTokens: readonly (readonly number[])[],
  schedules: readonly Schedule[],
): Promise<Float64Array[][]> {
  const V = engine.config.vocabSize;
  const ids = seqTokens.map(() => engine.addSequence());
  const plans = seqTokens.map((t, i) => stepSizes(t.length, schedules[i]));
  const done = seqTokens.map(() => 0);
  const out: Float64Array[][] = seqTokens.map(() => []);
  try {
    for (let step = 0; ; step++) {
      const active = plans.map((p, i) => (step < p.length ? i : -1)).filter((i) => i >= 0);
      if (active.length === 0) break;
      const entries = active.map((i) => ({ seq: ids[i], tokens: seqTokens[i].slice(done[i], done[i] + plans[i][step]), logits: 'all' as const }));
      const logits = await engine.step(entries);
      active.forEach((i, j) => {
        const k = plans[i][step];
        for (let r = 0; r < k; r++) out[i].push(Float64Array.from(logits[j].subarray(r * V, (r + 1) * V)));
        done[i] += k;
      });
    }
  } finally {
    for (const id of ids) engine.releaseSequence(id);
  }
  return out;
}

export function makeEngine(cfg: ModelConfig, plan: LayerPlan, opts: EngineOptions & { seed?: number; dtype?: WeightDtype } = {}): Engine {
  const weights = randomWeights(cfg, plan, { seed: opts.seed ?? 1, dtype: opts.dtype ?? 'f32' });
  return Engine.create(cfg, plan, weights, { threads: 2, kvPages: 512, ...opts });
}
