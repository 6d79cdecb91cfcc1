/**
 * Parity with the training-side PyTorch model: every fixture under test/fixtures/trained-tiny/
 * (made by train/make-fixtures.py: a toy-width model of each trained plan, trained a few steps
 * by train/train.py's step and exported by train/export.py, plus train/model.py's logits and
 * 16-token greedy continuations) is loaded by our HF loader and run on the CPU backend:
 *  - the engine's layer plan is the named preset's layout (so the fixture exercises that plan),
 *    and the configs the real models train from (train/configs/*.json) are the presets too;
 *  - logits at every prompt position and along the greedy path, whole / chunked / token by
 *    token: max |ours - torch| <= 1e-4 x max |torch| per prompt;
 *  - the exact greedy continuation.
 * No torch needed: the fixtures are committed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../lib/hf/load.js';
import { greedyGenerate } from '../../lib/engine/greedy.js';
import { presetPlan } from '../../lib/plan/presets.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { engineLogits, type Schedule } from '../engine/harness.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/trained-tiny/', import.meta.url));
const CONFIGS = fileURLToPath(new URL('../../train/configs/', import.meta.url));
const TOL = 1e-4;
/** TRAINED_PARITY_REPORT=1 prints the worst relative difference of every fixture/prompt/schedule. */
const REPORT = process.env.TRAINED_PARITY_REPORT === '1';
const NAMES = ['standard', 'ma', 'ma-endslide', 'ma-offset', 'ma-pairs', 'sliding', 'tiny'];

interface ReferencePrompt {
  readonly ids: number[];
  readonly greedy: number[];
  readonly logits_row: number;
  readonly rows: number;
}

interface Reference {
  readonly format: number;
  readonly name: string;
  readonly plan: string;
  readonly num_layers: number;
  readonly sliding_window: number | null;
  readonly vocab_size: number;
  readonly new_tokens: number;
  readonly logits_file: string;
  readonly logits_rows: number;
  readonly prompts: ReferencePrompt[];
}

function readFixture(name: string): { dir: string; ref: Reference; logits: Float32Array } {
  const dir = join(FIXTURES, name);
  const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
  expect(ref.format).toBe(1);
  const buf = readFileSync(join(dir, ref.logits_file));
  expect(buf.byteLength).toBe(ref.logits_rows * ref.vocab_size * 4);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const logits = Float32Array.from({ length: buf.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
  return { dir, ref, logits };
}

/** Per layer: 'g' or 's<window>' and the KV source, comparable with toEqual. */
const layout = (plan: LayerPlan): string[] =>
  plan.layers.map((l) => `${l.attention.kind === 'sliding' ? `s${l.attention.window}` : 'g'}<-${l.kvSource}`);

const fixtureNames = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, 'reference.json'))).sort()
  : [];

describe('trained-model parity with train/model.py (test/fixtures/trained-tiny)', () => {
  it('has a fixture for every trained plan', () => {
    expect(fixtureNames).toEqual([...NAMES].sort());
  });

  it('train/configs/*.json hold the presets the models are named after', () => {
    for (const name of NAMES) {
      const c = JSON.parse(readFileSync(join(CONFIGS, `${name}.json`), 'utf8')) as Record<string, unknown>;
      const preset = presetPlan(name === 'tiny' ? 'ma' : name, c.num_hidden_layers as number, { window: 128 });
      const types = c.layer_types as string[];
      const window = c.sliding_window as number | null;
      const got = types.map((t, i) => `${t === 'sliding_attention' ? `s${window}` : 'g'}<-${(c.kv_sources as number[])[i]}`);
      expect(got, name).toEqual(layout(preset));
      expect(c.num_hidden_layers, name).toBe(name === 'tiny' ? 6 : 12);
    }
  });

  for (const name of fixtureNames) {
    describe(name, () => {
      it("loads into the named preset's layout", async () => {
        const { dir, ref } = readFixture(name);
        await using engine = await loadEngine(dir, { kvPages: 256, threads: 2 });
        // Windows of 8 against prompts of 40 + 15 tokens: sliding and sharing both matter.
        expect(ref.sliding_window).toBe(name === 'standard' ? null : 8);
        const preset = presetPlan(ref.plan, ref.num_layers, { window: ref.sliding_window ?? 1024 });
        expect(layout(engine.plan)).toEqual(layout(preset));
        expect(engine.config.vocabSize).toBe(ref.vocab_size);
      });

      it('logits at every prompt position and along the greedy path, whole/chunked/token-by-token', async () => {
        const { dir, ref, logits } = readFixture(name);
        await using engine = await loadEngine(dir, { kvPages: 256, threads: 2 });
        const V = ref.vocab_size;
        const seqs = ref.prompts.map((p) => [...p.ids, ...p.greedy.slice(0, -1)]);
        const schedules: Schedule[][] = [
          seqs.map(() => 'whole'),
          seqs.map((_, i) => ({ chunk: 3 + 4 * i })),
          ['decode', { pattern: [5, 1, 9, 2] }],
        ];
        for (const schedule of schedules) {
          const got = await engineLogits(engine, seqs, schedule);
          ref.prompts.forEach((p, i) => {
            expect(got[i]).toHaveLength(p.rows);
            let worst = 0;
            let scale = 0;
            let at = -1;
            for (let r = 0; r < p.rows; r++) {
              const want = logits.subarray((p.logits_row + r) * V, (p.logits_row + r + 1) * V);
              for (let j = 0; j < V; j++) {
                scale = Math.max(scale, Math.abs(want[j]));
                const d = Math.abs(got[i][r][j] - want[j]);
                if (d > worst) [worst, at] = [d, r];
              }
            }
            const where = `${name} prompt ${i} (${p.ids.length} tokens), schedule ${JSON.stringify(schedule[i])}`;
            if (REPORT) console.log(`${where}: ${(worst / scale).toExponential(2)}`);
            expect(worst / scale, `${where}: worst at position ${at}`).toBeLessThanOrEqual(TOL);
          });
        }
        expect(engine.blocks.usedPages).toBe(0);
      });

      it('reproduces the greedy continuation, whole and chunked prefill', async () => {
        const { dir, ref } = readFixture(name);
        await using engine = await loadEngine(dir, { kvPages: 256, threads: 2 });
        const prompts = ref.prompts.map((p) => p.ids);
        const want = ref.prompts.map((p) => p.greedy);
        for (const prefillChunk of [undefined, 5]) {
          const r = await greedyGenerate(engine, prompts, { maxNewTokens: ref.new_tokens, prefillChunk });
          expect(r.tokens, `${name}, prefill chunk ${prefillChunk ?? 'whole'}`).toEqual(want);
        }
      });
    });
  }
});
