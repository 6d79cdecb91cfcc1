/**
 * Random-initialised weights for any (config, plan), for tests, parity fixtures and benchmarks.
 *
 * Initialisation keeps activations well-scaled at any size:
 *   - linear weights ([out, in], including lm_head): normal, std 1/sqrt(in)
 *   - RMSNorm weights: 1 + 0.1·normal (never constant, so a wrong norm weight shows)
 *   - biases: 0.1·normal
 *   - embeddings: normal, std 1
 *   - key bases (`k_up`, [headDim, kRank], low-rank K/V): orthonormal columns (Gram–Schmidt
 *     of a normal draw), as Eigen Attention's bases are
 *
 * Determinism: each tensor is drawn from its own stream, seeded by hashing its name with the
 * seed (`hashSeed(seed, name)`). A tensor's values depend only on (seed, name, shape) — not on
 * the order of tensors, nor on which other tensors exist. So two plans over the same config get
 * the same weights for every tensor they have in common (e.g. a layer that owns its KV in one
 * plan and reads another layer's in the other still gets the same q/o/MLP weights; an owner's
 * k/v projections are the same in every plan where it owns).
 *
 * For dtype 'bf16', `data` holds the values already rounded to bf16 (so a float reference fed
 * with `data` sees exactly what the engine stores) and `bytes` the bf16 bits; for 'f32' `bytes`
 * are the f32 bits. Bytes are little-endian.
 */
import type { ModelConfig } from './config.js';
import type { LayerPlan } from '../plan/types.js';
import { weightSpecs, type WeightSpec } from './weights.js';
import { Prng, hashSeed } from './prng.js';
import { f32ToBf16 } from './bf16.js';

export type WeightDtype = 'f32' | 'bf16';

export interface RandomWeightsOptions {
  /** A non-negative safe integer. */
  readonly seed: number;
  readonly dtype: WeightDtype;
}

export interface WeightTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: WeightDtype;
  /** The exact values (rounded to bf16 when dtype is 'bf16'). */
  readonly data: Float32Array;
  /** Storage bytes in `dtype`, little-endian. */
  readonly bytes: Uint8Array;
}

export type WeightKind = 'embedding' | 'linear' | 'norm' | 'bias' | 'basis';

/** How a canonical weight name is initialised. */
export function weightKind(name: string): WeightKind {
  if (name === 'embed') return 'embedding';
  if (name.endsWith('.k_up')) return 'basis';
  if (name === 'lm_head' || name.endsWith('_proj')) return 'linear';
  if (name.endsWith('_norm')) return 'norm';
  if (name.endsWith('_bias')) return 'bias';
  throw new Error(`randomWeights: unknown kind of weight '${name}'`);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function leBytes(a: Float32Array | Uint16Array): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const out = new Uint8Array(bytes.length);
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += w) for (let j = 0; j < w; j++) out[i + j] = bytes[i + w - 1 - j];
  return out;
}

/** Fills a [rows, cols] row-major matrix (cols <= rows) with orthonormal columns. */
function orthonormalColumns(out: Float32Array, rows: number, cols: number, rng: Prng): void {
  const m = Float64Array.from({ length: rows * cols }, () => rng.normal());
  for (let j = 0; j < cols; j++) {
    // Modified Gram–Schmidt, twice for columns that came out nearly dependent.
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += m[i * cols + j] * m[i * cols + p];
        for (let i = 0; i < rows; i++) m[i * cols + j] -= dot * m[i * cols + p];
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += m[i * cols + j] ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < rows; i++) m[i * cols + j] /= norm;
  }
  out.set(m);
}

/** One tensor, drawn from the stream of (seed, spec.name). */
export function randomTensor(spec: WeightSpec, opts: RandomWeightsOptions): WeightTensor {
  const kind = weightKind(spec.name);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = new Prng(hashSeed(opts.seed, spec.name));
  const data = new Float32Array(n);
  if (kind === 'embedding') {
    for (let i = 0; i < n; i++) data[i] = rng.normal();
  } else if (kind === 'linear') {
    const std = 1 / Math.sqrt(spec.shape[spec.shape.length - 1]);
    for (let i = 0; i < n; i++) data[i] = std * rng.normal();
  } else if (kind === 'basis') {
    orthonormalColumns(data, spec.shape[0], spec.shape[1], rng);
  } else if (kind === 'norm') {
    for (let i = 0; i < n; i++) data[i] = 1 + 0.1 * rng.normal();
  } else {
    for (let i = 0; i < n; i++) data[i] = 0.1 * rng.normal();
  }
  const shape = [...spec.shape];
  if (opts.dtype === 'f32') return { name: spec.name, shape, dtype: 'f32', data, bytes: leBytes(data) };
  if (opts.dtype !== 'bf16') throw new Error(`randomWeights: unknown dtype '${String(opts.dtype)}'`);
  const bits = f32ToBf16(data);
  const u32 = new Uint32Array(data.buffer);
  for (let i = 0; i < n; i++) u32[i] = bits[i] << 16;
  return { name: spec.name, shape, dtype: 'bf16', data, bytes: leBytes(bits) };
}

/** All weights of (cfg, plan), in `weightSpecs` order. */
export function randomWeights(cfg: ModelConfig, plan: LayerPlan, opts: RandomWeightsOptions): WeightTensor[] {
  return weightSpecs(cfg, plan).map((spec) => randomTensor(spec, opts));
}

/** name → values, the form the float64 reference and the loaders take. */
export function weightMap(tensors: readonly WeightTensor[]): Map<string, Float32Array> {
  return new Map(tensors.map((t) => [t.name, t.data]));
}
