/**
 * Model directories derived from a fixture for the --reference tests: a copy with one tensor
 * scaled (a small perturbation), and a low-rank K/V
 * checkpoint (contracts section B) folded from the fixture's own weights with random
 * orthonormal bases — per owner layer k_proj → U_kᵀ W_k per KV head with k_up = U_k, v_proj →
 * U_vᵀ W_v per KV head, and the o_proj of every layer reading it → W_o U_v per head — so it is
 * the reference with its keys and values projected, as calibration would make it.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../../lib/hf/safetensors.js';
import { Prng } from '../../lib/model/prng.js';
import { safetensorsBytes, type StTensor } from '../hf/safetensors-writer.js';

const bytesOf = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The first r columns of a random orthonormal D × D matrix, [D, r] row-major. */
function orthonormalColumns(rng: Prng, D: number, r: number): Float64Array {
  const m = Float64Array.from({ length: D * D }, () => rng.normal());
  for (let j = 0; j < D; j++) {
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let i = 0; i < D; i++) dot += m[i * D + j] * m[i * D + p];
      for (let i = 0; i < D; i++) m[i * D + j] -= dot * m[i * D + p];
    }
    let s = 0;
    for (let i = 0; i < D; i++) s += m[i * D + j] ** 2;
    for (let i = 0; i < D; i++) m[i * D + j] /= Math.sqrt(s);
  }
  return Float64Array.from({ length: D * r }, (_, k) => m[Math.floor(k / r) * D + (k % r)]);
}

/** Rows [g·D, (g+1)·D) of W [heads·D, H], projected on U [D, r]: [heads·r, H] with row g·r + j = Σ_d U[d, j] W[g·D + d]. */
function projectRows(w: Float32Array, heads: number, D: number, H: number, bases: readonly Float64Array[], r: number): Float32Array {
  const out = new Float32Array(heads * r * H);
  for (let g = 0; g < heads; g++) {
    for (let j = 0; j < r; j++) {
      for (let c = 0; c < H; c++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += bases[g][d * r + j] * w[(g * D + d) * H + c];
        out[(g * r + j) * H + c] = s;
      }
    }
  }
  return out;
}

/** Writes the tensors, the config and the fixture's tokenizer / generation files into `dir`. */
function writeDerived(src: string, dir: string, config: object, tensors: readonly StTensor[]): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors, { format: 'pt' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) copyFileSync(join(src, f), join(dir, f));
  return dir;
}

async function readF32Tensors(src: string): Promise<{ name: string; shape: number[]; data: Float32Array }[]> {
  await using cp = await Checkpoint.open(src);
  const out = [];
  for (const [name, info] of cp.tensors) {
    if (info.dtype !== 'F32') throw new Error(`${src}: ${name} is ${info.dtype}, expected F32`);
    out.push({ name, shape: [...info.shape], data: new Float32Array((await cp.read(name)).slice().buffer) });
  }
  return out;
}

/** A copy of the F32 fixture `src` with HF tensor `tensor` multiplied by `factor`. */
export async function writeScaledCopy(src: string, dir: string, tensor: string, factor: number): Promise<string> {
  const tensors = await readF32Tensors(src);
  if (!tensors.some((t) => t.name === tensor)) throw new Error(`${src}: no tensor ${tensor}`);
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as object;
  const scaled = tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, bytes: bytesOf(t.name === tensor ? t.data.map((x) => x * factor) : t.data) }));
  return writeDerived(src, dir, config, scaled);
}

export interface FoldSpec {
  /** Per layer (readers repeat their source's), as config.json eigen_attention holds them. */
  readonly kRanks: readonly number[];
  readonly vRanks: readonly number[];
  readonly errorBudget: number;
}

/** Writes the low-rank fold of the F32 Llama-family fixture `src` into `dir` (tokenizer files copied). */
export async function writeFoldedLowRank(src: string, dir: string, spec: FoldSpec, seed = 5): Promise<string> {
  const config = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  const H = config.hidden_size as number;
  const D = config.head_dim as number;
  const nH = config.num_attention_heads as number;
  const nKV = config.num_key_value_heads as number;
  const sources = config.kv_sources as number[];
  const rng = new Prng(seed);
  const kBasis = new Map<number, Float64Array>();
  const vBases = new Map<number, Float64Array[]>();
  sources.forEach((s, i) => {
    if (s !== i) return;
    if (spec.kRanks[i] < D) kBasis.set(i, orthonormalColumns(rng, D, spec.kRanks[i]));
    if (spec.vRanks[i] < D) vBases.set(i, Array.from({ length: nKV }, () => orthonormalColumns(rng, D, spec.vRanks[i])));
  });

  const tensors: StTensor[] = [];
  for (const t of await readF32Tensors(src)) {
    const name = t.name;
    let w = t.data;
    let shape = t.shape;
    const m = /^model\.layers\.(\d+)\.self_attn\.([kvo])_proj\.weight$/.exec(name);
    if (m) {
      const i = Number(m[1]);
      const kb = kBasis.get(i);
      const vb = m[2] === 'o' ? vBases.get(sources[i]) : vBases.get(i);
      if (m[2] === 'k' && kb) {
        w = projectRows(w, nKV, D, H, Array(nKV).fill(kb), spec.kRanks[i]);
        shape = [nKV * spec.kRanks[i], H];
        tensors.push({ name: `model.layers.${i}.self_attn.k_up.weight`, dtype: 'F32', shape: [D, spec.kRanks[i]], bytes: bytesOf(Float32Array.from(kb)) });
      } else if (m[2] === 'v' && vb) {
        w = projectRows(w, nKV, D, H, vb, spec.vRanks[i]);
        shape = [nKV * spec.vRanks[i], H];
      } else if (m[2] === 'o' && vb) {
        // Head h's output block of W_o times its KV head's basis: [H, nH·r].
        const r = spec.vRanks[i];
        const o = new Float32Array(H * nH * r);
        for (let row = 0; row < H; row++) {
          for (let h = 0; h < nH; h++) {
            const u = vb[Math.floor(h / (nH / nKV))];
            for (let j = 0; j < r; j++) {
              let s = 0;
              for (let d = 0; d < D; d++) s += w[row * nH * D + h * D + d] * u[d * r + j];
              o[row * nH * r + h * r + j] = s;
            }
          }
        }
        w = o;
        shape = [H, nH * r];
      }
    }
    tensors.push({ name, dtype: 'F32', shape, bytes: bytesOf(w) });
  }

  const eigen = { k_ranks: spec.kRanks, v_ranks: spec.vRanks, error_budget: spec.errorBudget };
  return writeDerived(src, dir, { ...config, eigen_attention: eigen }, tensors);
}
