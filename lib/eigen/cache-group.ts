/**
 * One KV cache under a plan — its owner layer and every layer reading it — on the calibration
 * tokens: the owner's keys (pre-RoPE) and values, each reader's rotated queries, and each
 * reader's attention output y = o_proj(attention) with full K/V, against which low-rank K/V
 * are measured: error = ‖y − ŷ‖ / ‖y‖ over all tokens, the worst reader's. Attention follows
 * each reader's plan semantics (its window; the owner's RoPE on keys, the reader's on queries).
 * The heavy ops run on the backend (ops.ts).
 */
import type { ModelConfig } from '../model/config.js';
import type { LayerPlan } from '../plan/types.js';
import { nativeRope } from '../engine/native-desc.js';
import type { NativeRope } from '../native.js';
import { accumulateGram, basisFromGram, type Basis } from './basis.js';
import type { NativeOps } from './ops.js';

export interface CalibrationData {
  readonly config: ModelConfig;
  readonly plan: LayerPlan;
  readonly samples: number;
  readonly seqLen: number;
  /** Per layer, attention inputs [samples·seqLen, hidden] fp32. */
  readonly inputs: readonly Float32Array[];
  /** An f32 weight by canonical name (lib/model/weights.ts), undefined when absent. */
  readonly weight: (name: string) => Float32Array | undefined;
}

/** Low-rank K/V of one cache in the form the runtime computes them. */
export interface LowRankKv {
  /** Keys before RoPE, [rows, numKvHeads, headDim]. */
  readonly keys: Float32Array;
  /** Values, [rows, numKvHeads, vDim]. */
  readonly values: Float32Array;
  readonly vDim: number;
  /** Each reader's o_proj for these values, [hidden, numHeads·vDim]. */
  readonly oProj: (reader: number) => Float32Array;
}

export function ropeOf(cfg: ModelConfig, layer: number): NativeRope {
  return cfg.localRopeLayers.includes(layer) ? nativeRope(cfg.ropeThetaLocal, { type: 'default' }) : nativeRope(cfg.ropeTheta, cfg.ropeScaling);
}

export function relativeError(y: Float32Array, yHat: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    const d = y[i] - yHat[i];
    num += d * d;
    den += y[i] * y[i];
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

export class CacheGroup {
  /** The layers that read this cache, the owner first. */
  readonly readers: readonly number[];
  /** Keys before RoPE and values of the calibration tokens, [rows, numKvHeads·headDim]. */
  readonly keys: Float32Array;
  readonly values: Float32Array;
  private readonly rows: number;
  private readonly positions: Int32Array;
  private readonly queries = new Map<number, Float32Array>();
  private readonly reference = new Map<number, Float32Array>();

  constructor(
    private readonly ops: NativeOps,
    private readonly data: CalibrationData,
    readonly owner: number,
  ) {
    const { config: c, plan, samples, seqLen } = data;
    this.readers = plan.layers.map((l, i) => (l.kvSource === owner ? i : -1)).filter((i) => i >= 0);
    this.rows = samples * seqLen;
    this.positions = new Int32Array(this.rows);
    for (let r = 0; r < this.rows; r++) this.positions[r] = r % seqLen;
    const kvDim = c.numKvHeads * c.headDim;
    const x = data.inputs[owner];
    this.keys = ops.matmul(x, this.need(owner, 'k_proj'), data.weight(`layers.${owner}.k_bias`), this.rows, kvDim, c.hiddenSize);
    this.values = ops.matmul(x, this.need(owner, 'v_proj'), data.weight(`layers.${owner}.v_bias`), this.rows, kvDim, c.hiddenSize);
    for (const j of this.readers) {
      const q = ops.matmul(data.inputs[j], this.need(j, 'q_proj'), data.weight(`layers.${j}.q_bias`), this.rows, c.numHeads * c.headDim, c.hiddenSize);
      this.queries.set(j, ops.rope(q, this.positions, c.numHeads, c.headDim, ropeOf(c, j)));
    }
    const full = this.outputs({ keys: this.keys, values: this.values, vDim: c.headDim, oProj: (j) => this.need(j, 'o_proj') });
    for (const [j, y] of full) this.reference.set(j, y);
  }

  /** The shared key basis (all KV heads' keys stacked) and one value basis per KV head. */
  bases(): { key: Basis; values: Basis[] } {
    const { numKvHeads: Hkv, headDim: d } = this.data.config;
    const kGram = new Float64Array(d * d);
    accumulateGram(kGram, this.keys, this.rows * Hkv, d, d, 0);
    const values: Basis[] = [];
    for (let g = 0; g < Hkv; g++) {
      const vGram = new Float64Array(d * d);
      accumulateGram(vGram, this.values, this.rows, d, Hkv * d, g * d);
      values.push(basisFromGram(vGram, d));
    }
    return { key: basisFromGram(kGram, d), values };
  }

  /** Each reader's attention output y [rows, hidden] with these K/V. */
  outputs(kv: LowRankKv): Map<number, Float32Array> {
    const { config: c, plan, samples, seqLen } = this.data;
    const keys = this.ops.rope(kv.keys, this.positions, c.numKvHeads, c.headDim, ropeOf(c, this.owner));
    const out = new Map<number, Float32Array>();
    for (const j of this.readers) {
      const a = plan.layers[j].attention;
      const attn = this.ops.attention({
        samples, seqLen, numHeads: c.numHeads, numKvHeads: c.numKvHeads,
        q: this.queries.get(j)!, keys, kDim: c.headDim, values: kv.values, vDim: kv.vDim,
        window: a.kind === 'sliding' ? a.window : 0, scale: c.attnScale, softcap: c.attnSoftcap,
      });
      out.set(j, this.ops.matmul(attn, kv.oProj(j), undefined, this.rows, c.hiddenSize, c.numHeads * kv.vDim));
    }
    return out;
  }

  /** Each reader's relative output error with these K/V against full K/V. */
  errors(kv: LowRankKv): Map<number, number> {
    const errs = new Map<number, number>();
    for (const [j, yHat] of this.outputs(kv)) errs.set(j, relativeError(this.reference.get(j)!, yHat));
    return errs;
  }

  /**
   * K/V as a folded checkpoint computes them (the runtime's arithmetic): c_k = x·k_projᵀ (+ bias),
   * keys = k_up·c_k per head (or c_k when there is no k_up); values c_v = x·v_projᵀ (+ bias).
   */
  folded(w: { kProj: Float32Array; kBias?: Float32Array; kUp?: Float32Array; kRank: number; vProj: Float32Array; vBias?: Float32Array; vRank: number; oProj: (reader: number) => Float32Array }): LowRankKv {
    const { numKvHeads: Hkv, headDim: d, hiddenSize: H } = this.data.config;
    const x = this.data.inputs[this.owner];
    const c = this.ops.matmul(x, w.kProj, w.kBias, this.rows, Hkv * w.kRank, H);
    const keys = w.kUp ? this.ops.matmul(c, w.kUp, undefined, this.rows * Hkv, d, w.kRank) : c;
    const values = this.ops.matmul(x, w.vProj, w.vBias, this.rows, Hkv * w.vRank, H);
    return { keys, values, vDim: w.vRank, oProj: w.oProj };
  }

  private need(layer: number, what: string): Float32Array {
    const w = this.data.weight(`layers.${layer}.${what}`);
    if (!w) throw new Error(`calibrate: weight 'layers.${layer}.${what}' is missing`);
    return w;
  }
}
