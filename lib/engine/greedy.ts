/**
 * Greedy generation for a batch of prompts: chunked prefill, then decode steps that
 * advance every live sequence together. The argmax runs on the backend (Engine.step's
 * `output: 'argmax'`): only token ids cross to the host.
 * The building block of the demo and the engine tests; the scheduler issue replaces it.
 */
import type { Engine } from './engine.js';

export interface GreedyOptions {
  readonly maxNewTokens: number;
  /** Largest prefill chunk per sequence and step; whole prompts unless given. */
  readonly prefillChunk?: number;
  /** Stop a sequence when it emits one of these. */
  readonly stopTokens?: readonly number[];
}

export interface GreedyResult {
  readonly tokens: number[][];
  readonly prefillTokens: number;
  readonly decodeTokens: number;
  readonly prefillSeconds: number;
  readonly decodeSeconds: number;
  /** Most KV pages held at once. */
  readonly peakPages: number;
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export async function greedyGenerate(engine: Engine, prompts: readonly (readonly number[])[], opts: GreedyOptions): Promise<GreedyResult> {
  const seqs = prompts.map(() => engine.addSequence());
  const out: number[][] = prompts.map(() => []);
  const stop = new Set(opts.stopTokens ?? []);
  let peakPages = 0;
  const notePeak = () => (peakPages = Math.max(peakPages, engine.blocks.usedPages));
  try {
    const t0 = performance.now();
    const chunk = opts.prefillChunk ?? Infinity;
    const offsets = prompts.map(() => 0);
    const next: number[] = prompts.map(() => -1);
    for (;;) {
      const entries = [];
      const idx: number[] = [];
      for (let i = 0; i < prompts.length; i++) {
        if (offsets[i] >= prompts[i].length) continue;
        const end = Math.min(prompts[i].length, offsets[i] + chunk);
        entries.push({ seq: seqs[i], tokens: prompts[i].slice(offsets[i], end) });
        idx.push(i);
        offsets[i] = end;
      }
      if (entries.length === 0) break;
      const ids = await engine.step(entries, { output: 'argmax' });
      notePeak();
      idx.forEach((i, j) => {
        if (offsets[i] === prompts[i].length) next[i] = ids[j][0];
      });
    }
    const t1 = performance.now();
    let decodeTokens = 0;
    const live = new Set(prompts.map((_, i) => i));
    const emit = (i: number) => {
      out[i].push(next[i]);
      if (out[i].length >= opts.maxNewTokens || stop.has(next[i])) live.delete(i);
    };
    if (opts.maxNewTokens > 0) for (const i of [...live]) emit(i);
    while (live.size > 0) {
      const order = [...live];
      const ids = await engine.step(
        order.map((i) => ({ seq: seqs[i], tokens: [next[i]] })),
        { output: 'argmax' },
      );
      notePeak();
      decodeTokens += order.length;
      order.forEach((i, j) => {
        next[i] = ids[j][0];
        emit(i);
      });
    }
    const t2 = performance.now();
    const prefillTokens = prompts.reduce((a, p) => a + p.length, 0);
    return { tokens: out, prefillTokens, decodeTokens, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000, peakPages };
  } finally {
    for (const s of seqs) engine.releaseSequence(s);
  }
}
