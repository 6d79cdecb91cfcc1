/**
 * The backend ops calibration needs (matmul, RoPE, paged attention), run one at a time on host
 * arrays through the addon's runOp on the CPU or CUDA backend: the same kernels the engine
 * runs, at native speed, instead of JS loops. Activations cross as fp32 (rounded to the
 * backend's activation dtype inside: bf16 on CUDA).
 */
import type { BackendName } from '../engine/engine.js';
import { loadAddon, type NativeRope } from '../native.js';

/** Tokens per KV page in the arenas built here (the engine's default block size). */
export const BLOCK_SIZE = 16;

export interface AttentionArgs {
  /** Sequences, each of `seqLen` tokens at positions 0 … seqLen − 1, rows back to back. */
  readonly samples: number;
  readonly seqLen: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  /** Queries after RoPE, [samples·seqLen, numHeads, kDim]. */
  readonly q: Float32Array;
  /** Keys after RoPE, [samples·seqLen, numKvHeads, kDim]. */
  readonly keys: Float32Array;
  readonly kDim: number;
  /** Values, [samples·seqLen, numKvHeads, vDim]. */
  readonly values: Float32Array;
  readonly vDim: number;
  /** Sliding window (0 = global). */
  readonly window: number;
  readonly scale: number;
  readonly softcap: number;
}

export class NativeOps {
  private readonly runOp = loadAddon().runOp;

  constructor(readonly backend: BackendName) {}

  /** out[M, N] = x[M, K] · w[N, K]ᵀ (+ bias[N]), weights in f32. */
  matmul(x: Float32Array, w: Float32Array, bias: Float32Array | undefined, M: number, N: number, K: number): Float32Array {
    return this.runOp(this.backend, 'matmul', { wType: 'f32', M, N, K, x, w, bias: bias ?? null }).out;
  }

  /** RoPE of x [T, heads, headDim] (a new array), row t at positions[t]. */
  rope(x: Float32Array, positions: Int32Array, heads: number, headDim: number, rope: NativeRope): Float32Array {
    return this.runOp(this.backend, 'rope', { x, positions, heads, headDim, rope }).out;
  }

  /** Causal (windowed) attention of every sample's rows over its own keys: [rows, numHeads, vDim]. */
  attention(a: AttentionArgs): Float32Array {
    const { samples, seqLen, numKvHeads: Hkv, kDim, vDim } = a;
    const pagesPerSeq = Math.ceil(seqLen / BLOCK_SIZE);
    const numPages = samples * pagesPerSeq;
    const pageElems = BLOCK_SIZE * Hkv * (kDim + vDim);
    // Page layout (native/backend.h PagedKv): K as [Hkv][block][kDim], then V as [Hkv][block][vDim].
    const arena = new Float32Array(numPages * pageElems);
    for (let s = 0; s < samples; s++) {
      for (let t = 0; t < seqLen; t++) {
        const row = s * seqLen + t;
        const page = (s * pagesPerSeq + Math.floor(t / BLOCK_SIZE)) * pageElems;
        const off = t % BLOCK_SIZE;
        for (let g = 0; g < Hkv; g++) {
          const k0 = (row * Hkv + g) * kDim;
          arena.set(a.keys.subarray(k0, k0 + kDim), page + (g * BLOCK_SIZE + off) * kDim);
          const v0 = (row * Hkv + g) * vDim;
          arena.set(a.values.subarray(v0, v0 + vDim), page + BLOCK_SIZE * Hkv * kDim + (g * BLOCK_SIZE + off) * vDim);
        }
      }
    }
    const tables = Int32Array.from({ length: numPages }, (_, i) => i);
    return this.runOp(this.backend, 'attention', {
      numNew: new Int32Array(samples).fill(seqLen),
      pastLen: new Int32Array(samples),
      numHeads: a.numHeads,
      window: a.window,
      scale: a.scale,
      softcap: a.softcap,
      q: a.q,
      kv: {
        dtype: 'f32', numPages, blockSize: BLOCK_SIZE, numKvHeads: Hkv, kDim, vDim,
        pagesPerBlock: 1, slot: 0, tableStride: pagesPerSeq, tables, arena,
      },
    }).out;
  }
}
