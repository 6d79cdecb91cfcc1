/**
 * Fast deterministic bf16 weights for benchmarks of large models. randomWeights draws every
 * value with Box–Muller (minutes for 1B+ parameters in JS); here each tensor draws a table of
 * 4096 values at the right scale (the same per-kind init as randomWeights) and fills itself
 * from the table with a xorshift stream. Timing does not depend on the values; they only need
 * the right scale, no zeros and no NaNs. Not for correctness tests: use randomWeights.
 */
import type { LayerPlan } from '../plan/types.js';
import type { ModelConfig } from './config.js';
import { f32ToBf16Bits } from './bf16.js';
import { Prng, hashSeed } from './prng.js';
import { weightKind, type WeightTensor } from './random-weights.js';
import { weightSpecs, type WeightSpec } from './weights.js';

const TABLE = 4096;

function tensorBits(spec: WeightSpec, seed: number): Uint16Array {
  const rng = new Prng(hashSeed(seed, spec.name));
  const kind = weightKind(spec.name);
  // A key basis [headDim, kRank] gets columns of about unit norm (orthonormal on average).
  const scale =
    kind === 'embedding' ? 1
    : kind === 'linear' ? 1 / Math.sqrt(spec.shape[spec.shape.length - 1])
    : kind === 'basis' ? 1 / Math.sqrt(spec.shape[0])
    : 0.1;
  const offset = kind === 'norm' ? 1 : 0;
  const table = new Uint16Array(TABLE);
  for (let i = 0; i < TABLE; i++) {
    let v = offset + scale * rng.normal();
    if (v === 0) v = scale * 1e-3;
    table[i] = f32ToBf16Bits(v);
  }
  const n = spec.shape.reduce((x, y) => x * y, 1);
  const out = new Uint16Array(n);
  let x = rng.nextU32() || 1;
  for (let i = 0; i < n; i += 2) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = table[x & (TABLE - 1)];
    if (i + 1 < n) out[i + 1] = table[(x >>> 12) & (TABLE - 1)];
  }
  return out;
}

/** bf16 weights for (cfg, plan), one tensor at a time; `data` is not filled (bytes only). */
export function* fastWeights(cfg: ModelConfig, plan: LayerPlan, seed: number): Generator<Omit<WeightTensor, 'data'>> {
  for (const spec of weightSpecs(cfg, plan)) {
    const bits = tensorBits(spec, seed);
    yield { name: spec.name, shape: spec.shape, dtype: 'bf16', bytes: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength) };
  }
}
