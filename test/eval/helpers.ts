/**
 * Shared by the eval tests: fixture models loaded into the float64 reference (weights read
 * straight from the checkpoint by HF name), and small synthetic held-out / retrieval files
 * in the format of contracts section A.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readModelDir } from '../../lib/hf/load.js';
import { Checkpoint } from '../../lib/hf/safetensors.js';
import { weightSpecs } from '../../lib/model/weights.js';
import { bf16ToF32 } from '../../lib/model/bf16.js';
import { Prng, hashSeed } from '../../lib/model/prng.js';
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import type { Tokenizer } from '../../lib/tokenizer/index.js';
import { hfName } from '../hf/helpers.js';
import { referenceForward } from '../reference/transformer64.js';

export const FIXTURES = fileURLToPath(new URL('../fixtures/hf/', import.meta.url));
export const fixtureDir = (name: string): string => join(FIXTURES, name);

export interface ReferenceModel {
  readonly config: ModelConfig;
  readonly plan: LayerPlan;
  readonly weights: Map<string, Float32Array>;
}

/** A Llama-family fixture's weights under canonical names, as stored (F32 or BF16). */
export async function referenceModel(dir: string): Promise<ReferenceModel> {
  const md = await readModelDir(dir);
  const weights = new Map<string, Float32Array>();
  await using cp = await Checkpoint.open(dir);
  for (const spec of weightSpecs(md.config, md.plan)) {
    const name = hfName(spec.name, false);
    const info = cp.tensors.get(name);
    if (!info) throw new Error(`${dir}: no tensor ${name}`);
    const raw = await cp.read(name);
    const copy = raw.slice().buffer;
    if (info.dtype === 'F32') weights.set(spec.name, new Float32Array(copy));
    else if (info.dtype === 'BF16') weights.set(spec.name, bf16ToF32(new Uint16Array(copy)));
    else throw new Error(`${name}: dtype ${info.dtype} not handled here`);
  }
  return { config: md.config, plan: md.plan, weights };
}

/** −log softmax(row)[target] via log-sum-exp, in float64 (written independently of lib/eval). */
export function referenceNll(row: Float64Array, target: number): number {
  const m = row.reduce((a, b) => Math.max(a, b), -Infinity);
  const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
  return lse - row[target];
}

/** Greedy continuation of `prompt` by the float64 reference, with each step's top-2 margin. */
export function referenceGreedy(ref: ReferenceModel, prompt: readonly number[], n: number): { tokens: number[]; minMargin: number } {
  const seq = [...prompt];
  const tokens: number[] = [];
  let minMargin = Infinity;
  for (let i = 0; i < n; i++) {
    const logits = referenceForward(ref.config, ref.plan, ref.weights, seq);
    const last = logits[logits.length - 1];
    let best = 0;
    for (let j = 1; j < last.length; j++) if (last[j] > last[best]) best = j;
    const second = Math.max(...Array.from(last).filter((_, j) => j !== best));
    minMargin = Math.min(minMargin, last[best] - second);
    tokens.push(best);
    seq.push(best);
  }
  return { tokens, minMargin };
}

const WORDS = (
  'the a of and to in is was for on that with as by at from river stone garden window morning quiet ' +
  'light house road music paper winter summer old new small large green blue slowly often never always ' +
  'people city mountain letter table friend story water fire evening bridge market village train'
).split(' ');

/** Deterministic English-like filler of about `words` words, in sentences. */
export function fillerText(words: number, seed = 1): string {
  const r = new Prng(hashSeed(seed, 'filler'));
  const out: string[] = [];
  let sentence: string[] = [];
  for (let i = 0; i < words; i++) {
    sentence.push(WORDS[Math.floor(r.uniform() * WORDS.length)]);
    if (sentence.length >= 6 + Math.floor(r.uniform() * 6)) {
      const s = sentence.join(' ');
      out.push(s[0].toUpperCase() + s.slice(1) + '.');
      sentence = [];
    }
  }
  return out.join(' ');
}

/** Held-out text: paragraphs of filler separated by blank lines. */
export function heldoutText(paragraphs: number, seed = 1): string {
  return Array.from({ length: paragraphs }, (_, i) => fillerText(40, seed * 1000 + i)).join('\n\n') + '\n';
}

export interface SyntheticItem {
  id: string;
  prompt: string;
  answer: string;
  context_tokens: number;
  depth: number;
}

/** Retrieval prompts in the contract's format (one needle), `perCell` per (context, depth). */
export function retrievalItems(tok: Tokenizer, contexts: readonly number[], depths: readonly number[], perCell: number): SyntheticItem[] {
  const names = ['Alice', 'Bruno', 'Chen', 'Dana', 'Emil', 'Farah', 'Goran', 'Hana'];
  const items: SyntheticItem[] = [];
  let k = 0;
  for (const ctx of contexts) {
    for (const depth of depths) {
      for (let j = 0; j < perCell; j++, k++) {
        const name = names[k % names.length];
        const value = String(1000 + ((k * 7919) % 9000));
        const needle = `The pass code of ${name} is ${value}.`;
        const question = `\nQuestion: what is the pass code of ${name}?\nAnswer: The pass code of ${name} is`;
        const filler = fillerText(ctx, k + 17).split(' ');
        // Grow the filler until the prompt reaches ctx tokens.
        let words = 1;
        const build = (w: number) => {
          const f = filler.slice(0, w);
          const at = Math.round(depth * f.length);
          return [...f.slice(0, at), needle, ...f.slice(at)].join(' ') + question;
        };
        while (words < filler.length && tok.encode(build(words)).length < ctx) words++;
        items.push({ id: `s${k}`, prompt: build(words), answer: ` ${value}`, context_tokens: ctx, depth });
      }
    }
  }
  return items;
}

/** Writes heldout.txt and retrieval.jsonl under dir; returns their paths. */
export function writeEvalInputs(dir: string, tok: Tokenizer, opts: { contexts: number[]; depths: number[]; perCell: number; paragraphs: number }): { heldout: string; retrieval: string } {
  mkdirSync(dir, { recursive: true });
  const heldout = join(dir, 'heldout.txt');
  const retrieval = join(dir, 'retrieval.jsonl');
  writeFileSync(heldout, heldoutText(opts.paragraphs));
  writeFileSync(retrieval, retrievalItems(tok, opts.contexts, opts.depths, opts.perCell).map((it) => JSON.stringify(it)).join('\n') + '\n');
  return { heldout, retrieval };
}
