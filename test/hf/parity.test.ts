/**
 * Parity with HF transformers: every fixture under test/fixtures/hf/ (made by
 * scripts/hf_fixtures.py: a tiny random model directory plus HF's logits and greedy
 * continuations, see the script's docstring for expected.json) is loaded through our loader
 * and run by the engine on the CPU backend. Checks, per fixture:
 *  - logits at every prompt position and at every step of HF's greedy path (teacher-forced),
 *    in one ragged batch fed whole, in chunks and token by token:
 *    max |ours - HF| <= 1e-4 x max |HF| per prompt;
 *  - the exact 32-token greedy continuation, with whole and chunked prefill.
 * No torch needed: the fixtures are committed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadEngine, readModelDir } from '../../lib/hf/load.js';
import { greedyGenerate } from '../../lib/engine/greedy.js';
import type { Engine } from '../../lib/engine/engine.js';
import { engineLogits, type Schedule } from '../engine/harness.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));
const TOL = 1e-4;
/** HF_PARITY_REPORT=1 prints the worst relative difference of every fixture/prompt/schedule. */
const REPORT = process.env.HF_PARITY_REPORT === '1';

interface ExpectedPrompt {
  readonly ids: number[];
  readonly prompt_logits_row: number;
  readonly greedy: number[];
  readonly greedy_logits_row: number;
  readonly min_margin: number;
  readonly max_abs_logit: number;
}

interface Expected {
  readonly format: number;
  readonly name: string;
  readonly architecture: string;
  readonly weights_dtype: string;
  readonly vocab_size: number;
  readonly logits_file: string;
  readonly logits_rows: number;
  readonly generation: { readonly max_new_tokens: number };
  readonly prompts: ExpectedPrompt[];
}

interface Fixture {
  readonly dir: string;
  readonly expected: Expected;
  /** logits_rows x vocab_size, little-endian float32. */
  readonly logits: Float32Array;
  readonly config: Record<string, unknown>;
}

function readFixture(name: string): Fixture {
  const dir = join(FIXTURES, name);
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  expect(expected.format).toBe(1);
  const buf = readFileSync(join(dir, expected.logits_file));
  expect(buf.byteLength).toBe(expected.logits_rows * expected.vocab_size * 4);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const logits = new Float32Array(buf.byteLength / 4);
  for (let i = 0; i < logits.length; i++) logits[i] = view.getFloat32(i * 4, true);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return { dir, expected, logits, config };
}

const fixtureNames = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, 'expected.json'))).sort()
  : [];

/** HF rows [row, row + count) of the logits file. */
function hfRows(f: Fixture, row: number, count: number): Float32Array[] {
  const V = f.expected.vocab_size;
  return Array.from({ length: count }, (_, r) => f.logits.subarray((row + r) * V, (row + r + 1) * V));
}

/** Worst |ours - HF| over rows, relative to the largest |HF| there, and where it is. */
function compare(ours: readonly Float64Array[], hf: readonly Float32Array[]): { rel: number; row: number; token: number } {
  let worst = 0;
  let scale = 0;
  let at = { row: -1, token: -1 };
  hf.forEach((ref, r) => {
    expect(ours[r]).toHaveLength(ref.length);
    for (let j = 0; j < ref.length; j++) {
      scale = Math.max(scale, Math.abs(ref[j]));
      const d = Math.abs(ours[r][j] - ref[j]);
      if (d > worst) {
        worst = d;
        at = { row: r, token: j };
      }
    }
  });
  return { rel: worst / scale, ...at };
}

async function openEngine(f: Fixture): Promise<Engine> {
  const dir = await readModelDir(f.dir);
  return await loadEngine(dir, { kvPages: 512, threads: 2 });
}

describe('HF transformers parity (test/fixtures/hf)', () => {
  it('has the fixtures of every supported architecture', () => {
    const archs = new Set(fixtureNames.map((n) => readFixture(n).expected.architecture));
    for (const a of ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'Gemma2ForCausalLM', 'Gemma3ForCausalLM']) {
      expect(archs, a).toContain(a);
    }
    expect(fixtureNames).toContain('mixattn');
  });

  for (const name of fixtureNames) {
    describe(name, () => {
      it('loads into the plan its config describes', async () => {
        const f = readFixture(name);
        await using engine = await openEngine(f);
        const n = f.config.num_hidden_layers as number;
        expect(engine.plan.layers).toHaveLength(n);
        expect(engine.config.vocabSize).toBe(f.expected.vocab_size);
        const sources = f.config.kv_sources as number[] | undefined;
        expect(engine.plan.layers.map((l) => l.kvSource)).toEqual(sources ?? Array.from({ length: n }, (_, i) => i));
        const types = f.config.layer_types as string[] | undefined;
        if (types) {
          expect(engine.plan.layers.map((l) => (l.attention.kind === 'sliding' ? 'sliding_attention' : 'full_attention'))).toEqual(types);
        }
      });

      it('logits at every prompt position and along the greedy path, whole/chunked/token-by-token', async () => {
        const f = readFixture(name);
        await using engine = await openEngine(f);
        // Each prompt followed by HF's continuation (teacher forcing): the positions from the
        // last prompt token on are the ones generate() produced logits for.
        const seqs = f.expected.prompts.map((p) => [...p.ids, ...p.greedy.slice(0, -1)]);
        const schedules: Schedule[][] = [
          seqs.map(() => 'whole'),
          seqs.map((_, i) => ({ chunk: 3 + 2 * i })),
          [{ pattern: [5, 1, 16, 2] }, 'decode', { chunk: 9 }].slice(0, seqs.length) as Schedule[],
        ];
        for (const schedule of schedules) {
          const got = await engineLogits(engine, seqs, schedule);
          f.expected.prompts.forEach((p, i) => {
            const n = p.ids.length;
            const steps = f.expected.generation.max_new_tokens;
            const pre = compare(got[i].slice(0, n), hfRows(f, p.prompt_logits_row, n));
            const gen = compare(got[i].slice(n - 1, n - 1 + steps), hfRows(f, p.greedy_logits_row, steps));
            const where = `${name} prompt ${i} (${n} tokens), schedule ${JSON.stringify(schedule[i])}`;
            if (REPORT) console.log(`${where}: prompt ${pre.rel.toExponential(2)}, greedy path ${gen.rel.toExponential(2)}`);
            expect(pre.rel, `${where}: prompt logits, worst at position ${pre.row} token ${pre.token}`).toBeLessThanOrEqual(TOL);
            expect(gen.rel, `${where}: greedy-path logits, worst at step ${gen.row} token ${gen.token}`).toBeLessThanOrEqual(TOL);
          });
        }
        expect(engine.blocks.usedPages).toBe(0);
      });

      it('reproduces the 32-token greedy continuation, whole and chunked prefill', async () => {
        const f = readFixture(name);
        await using engine = await openEngine(f);
        const prompts = f.expected.prompts.map((p) => p.ids);
        const want = f.expected.prompts.map((p) => p.greedy);
        const maxNewTokens = f.expected.generation.max_new_tokens;
        // The continuations hold no EOS id of the checkpoint (the script picks prompts so), so a
        // runner that stops at EOS emits the same 32 tokens.
        const eos = f.config.eos_token_id as number | number[];
        const stopTokens = Array.isArray(eos) ? eos : [eos];
        for (const prefillChunk of [undefined, 4, 7]) {
          const r = await greedyGenerate(engine, prompts, { maxNewTokens, prefillChunk, stopTokens });
          expect(r.tokens, `${name}, prefill chunk ${prefillChunk ?? 'whole'}`).toEqual(want);
        }
        // One prompt at a time too (batch composition must not matter).
        for (let i = 0; i < prompts.length; i++) {
          const r = await greedyGenerate(engine, [prompts[i]], { maxNewTokens, prefillChunk: 5 });
          expect(r.tokens[0], `${name}, prompt ${i} alone`).toEqual(want[i]);
        }
      });
    });
  }
});
