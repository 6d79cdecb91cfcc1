/**
 * A calibrated checkpoint's tensors: the input checkpoint's, with each cache's bases folded
 * into the K/V projections and the o_proj of every layer reading it (fold.ts), k_up added
 * where keys are low-rank, and the K/V projections of layers that read another layer's cache
 * under the plan left out. Changed tensors keep their input dtype; the values the runtime will
 * see (after that rounding) are kept too, to measure the written model's error.
 */
import type { ModelConfig } from '../model/config.js';
import type { LayerPlan } from '../plan/types.js';
import type { Checkpoint, SafetensorsDtype } from '../hf/safetensors.js';
import { hfLayerOf } from '../hf/tensor-names.js';
import { toF32 } from '../hf/convert.js';
import { encodeTensor, type TensorToWrite } from '../hf/safetensors-writer.js';
import { leadingVectors, type Basis } from './basis.js';
import { foldColumns, foldRows } from './fold.js';

/** One cache's bases and ranks. */
export interface CacheFold {
  readonly owner: number;
  /** The layers reading the cache (the owner among them). */
  readonly readers: readonly number[];
  readonly keyBasis: Basis;
  /** One per KV head. */
  readonly valueBases: readonly Basis[];
  readonly kRank: number;
  readonly vRank: number;
}

export interface FoldedTensor {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
  /** The stored values as f32 (what a loader reads back). */
  readonly values: Float32Array;
}

/** HF name of a layer's attention tensor, e.g. attnName(3, 'k_up.weight'). */
export const attnName = (layer: number, what: string): string => `model.layers.${layer}.self_attn.${what}`;

const KV_TENSORS = ['k_proj.weight', 'k_proj.bias', 'v_proj.weight', 'v_proj.bias'];

function stored(values: Float64Array, dtype: SafetensorsDtype, shape: readonly number[]): FoldedTensor {
  const bytes = encodeTensor(values, dtype);
  return { dtype, shape, bytes, values: Float32Array.from(toF32(dtype, bytes)) };
}

/**
 * The folded tensors of one cache, by HF name: none at full ranks. `weight(hfName)` gives an
 * input tensor's f32 values and dtype.
 */
export function foldCache(
  cfg: ModelConfig,
  c: CacheFold,
  weight: (hfName: string) => { values: Float32Array; dtype: SafetensorsDtype } | undefined,
): Map<string, FoldedTensor> {
  const { numKvHeads: Hkv, numHeads: Hq, headDim: d, hiddenSize: H } = cfg;
  const out = new Map<string, FoldedTensor>();
  const need = (name: string) => {
    const w = weight(name);
    if (!w) throw new Error(`calibrate: the checkpoint has no tensor '${name}'`);
    return w;
  };
  const i = c.owner;
  if (c.kRank < d) {
    const u = leadingVectors(c.keyBasis, c.kRank);
    const bases = Array.from({ length: Hkv }, () => u);
    const w = need(attnName(i, 'k_proj.weight'));
    out.set(attnName(i, 'k_proj.weight'), stored(foldRows(w.values, Hkv, d, H, bases, c.kRank), w.dtype, [Hkv * c.kRank, H]));
    const b = weight(attnName(i, 'k_proj.bias'));
    if (b) out.set(attnName(i, 'k_proj.bias'), stored(foldRows(b.values, Hkv, d, 1, bases, c.kRank), b.dtype, [Hkv * c.kRank]));
    out.set(attnName(i, 'k_up.weight'), stored(u, w.dtype, [d, c.kRank]));
  }
  if (c.vRank < d) {
    const bases = c.valueBases.map((b) => leadingVectors(b, c.vRank));
    const w = need(attnName(i, 'v_proj.weight'));
    out.set(attnName(i, 'v_proj.weight'), stored(foldRows(w.values, Hkv, d, H, bases, c.vRank), w.dtype, [Hkv * c.vRank, H]));
    const b = weight(attnName(i, 'v_proj.bias'));
    if (b) out.set(attnName(i, 'v_proj.bias'), stored(foldRows(b.values, Hkv, d, 1, bases, c.vRank), b.dtype, [Hkv * c.vRank]));
    const group = Hq / Hkv;
    for (const j of c.readers) {
      const o = need(attnName(j, 'o_proj.weight'));
      const folded = foldColumns(o.values, H, Hq, d, (h) => bases[Math.floor(h / group)], c.vRank);
      out.set(attnName(j, 'o_proj.weight'), stored(folded, o.dtype, [H, Hq * c.vRank]));
    }
  }
  return out;
}

/**
 * Everything the output model.safetensors holds, in the input's file order: folded tensors in
 * place of the originals (k_up right after its k_proj), unchanged ones copied as stored, the
 * K/V of reader layers left out.
 */
export function outputTensors(cp: Checkpoint, plan: LayerPlan, folded: ReadonlyMap<string, FoldedTensor>): TensorToWrite[] {
  const fileOrder = new Map(cp.files.map((f, i) => [f, i]));
  const inputs = [...cp.tensors.values()].sort((a, b) => fileOrder.get(a.file)! - fileOrder.get(b.file)! || a.byteOffset - b.byteOffset);
  const out: TensorToWrite[] = [];
  const fromFolded = (name: string, t: FoldedTensor): TensorToWrite => ({ name, dtype: t.dtype, shape: t.shape, bytes: () => t.bytes });
  for (const info of inputs) {
    const layer = hfLayerOf(info.name);
    const reader = layer !== undefined && layer < plan.layers.length && plan.layers[layer].kvSource !== layer;
    if (reader && KV_TENSORS.some((k) => info.name === attnName(layer, k))) continue;
    const f = folded.get(info.name);
    out.push(f ? fromFolded(info.name, f) : { name: info.name, dtype: info.dtype, shape: info.shape, bytes: () => cp.read(info.name) });
    if (layer !== undefined && info.name === attnName(layer, 'k_proj.weight')) {
      const up = folded.get(attnName(layer, 'k_up.weight'));
      if (up) out.push(fromFolded(attnName(layer, 'k_up.weight'), up));
    }
  }
  return out;
}
