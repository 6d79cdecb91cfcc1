/**
 * The HF parity fixtures (test/fixtures/hf, tiny random models of each architecture with HF's
 * fp32 logits and greedy continuations) run by the CUDA engine: each model directory is loaded
 * through lib/hf/load.ts into an engine with backend 'cuda' (bf16 activations, bf16 KV pages,
 * weights as the checkpoint stores them), fed HF's prompts followed by HF's greedy continuation
 * (teacher forcing) whole, in chunks and token by token.
 *
 * Bound, per fixture and prompt: ‖ours − HF‖/‖HF‖ over the logits of every position ≤ 2 ×
 * PyTorch's own bf16 error on the same fixture and positions (bf16-bounds.json
 * `model_fixtures`: transformers in bf16 against fp32 on the GPU machine,
 * test/gpu/torch_bf16_bounds.py). The mixattn fixture (KV sharing: no HF architecture, so no
 * PyTorch bf16 run) takes the worst of the others (`model`).
 *
 * Greedy continuation: bf16 may flip a near-tie, so the tokens must match HF's up to the first
 * step whose HF top-2 margin is not above 2 × our worst teacher-forced logit error there (and
 * all 32 when no step is that close).
 *
 * MIXATTN_TWIN=cpu runs the same on the CPU backend (f32 KV): then the bound is 1e-4.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadEngine, readModelDir } from '../../lib/hf/load.js';
import { greedyGenerate } from '../../lib/engine/greedy.js';
import { engineLogits, type Schedule } from '../engine/harness.js';
import { TWIN, cudaAvailable, expectWithin, relErr } from './twin.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));
const BOUNDS_FILE = fileURLToPath(new URL('./bf16-bounds.json', import.meta.url));

interface Expected {
  readonly vocab_size: number;
  readonly logits_file: string;
  readonly generation: { readonly max_new_tokens: number };
  readonly prompts: { ids: number[]; prompt_logits_row: number; greedy: number[]; greedy_logits_row: number }[];
}

const names = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, 'expected.json'))).sort() : [];

function torchBound(name: string): number {
  if (TWIN === 'cpu') return 1e-4;
  const doc = JSON.parse(readFileSync(BOUNDS_FILE, 'utf8')) as { entries: Record<string, number>; model_fixtures?: Record<string, number | string> };
  const own = doc.model_fixtures?.[name];
  return 2 * (typeof own === 'number' ? own : doc.entries.model);
}

function readLogits(dir: string, e: Expected): Float32Array {
  const buf = readFileSync(join(dir, e.logits_file));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = new Float32Array(buf.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

describe.skipIf(!cudaAvailable)(`HF parity fixtures on the ${TWIN} engine`, () => {
  for (const name of names) {
    it(name, async () => {
      const dir = join(FIXTURES, name);
      const e = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const hf = readLogits(dir, e);
      const V = e.vocab_size;
      const row = (r: number) => hf.subarray(r * V, (r + 1) * V);
      const steps = e.generation.max_new_tokens;
      // HF's logits of every position of prompt + greedy[:-1]: the prompt rows, then greedy steps 1.. .
      const refs = e.prompts.map((p) => {
        const n = p.ids.length;
        const rows = [...Array.from({ length: n }, (_, i) => row(p.prompt_logits_row + i)), ...Array.from({ length: steps - 1 }, (_, s) => row(p.greedy_logits_row + 1 + s))];
        const flat = new Float64Array(rows.length * V);
        rows.forEach((r, i) => flat.set(r, i * V));
        return flat;
      });
      const seqs = e.prompts.map((p) => [...p.ids, ...p.greedy.slice(0, -1)]);
      const bound = torchBound(name);
      await using engine = await loadEngine(await readModelDir(dir), { backend: TWIN, kvPages: 512, threads: 2 });
      const worstAbs = e.prompts.map(() => 0);
      const schedules: Schedule[][] = [seqs.map(() => 'whole'), seqs.map((_, i) => ({ chunk: 3 + 2 * i })), seqs.map(() => 'decode')];
      for (const schedule of schedules) {
        const got = await engineLogits(engine, seqs, schedule);
        got.forEach((rows, i) => {
          const flat = new Float64Array(rows.length * V);
          rows.forEach((r, j) => flat.set(r, j * V));
          for (let j = 0; j < flat.length; j++) worstAbs[i] = Math.max(worstAbs[i], Math.abs(flat[j] - refs[i][j]));
          expectWithin(`hf ${name} prompt ${i} ${JSON.stringify(schedule[i])}`, relErr(flat, refs[i]), bound);
        });
      }
      // Greedy generation on this engine vs HF's tokens, up to the first near-tie.
      const eos = config.eos_token_id as number | number[] | undefined;
      const stopTokens = eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
      const r = await greedyGenerate(engine, e.prompts.map((p) => p.ids), { maxNewTokens: steps, stopTokens });
      e.prompts.forEach((p, i) => {
        let sure = steps;
        for (let s = 0; s < steps; s++) {
          const l = row(p.greedy_logits_row + s);
          let a = -Infinity, b = -Infinity;
          for (const x of l) if (x > a) [a, b] = [x, a]; else if (x > b) b = x;
          if (a - b <= 2 * worstAbs[i]) {
            sure = s;
            break;
          }
        }
        expect(r.tokens[i].slice(0, sure), `${name} prompt ${i}: greedy tokens (first ${sure} are beyond bf16 near-ties)`).toEqual(p.greedy.slice(0, sure));
      });
      expect(engine.blocks.usedPages).toBe(0);
    });
  }
});
