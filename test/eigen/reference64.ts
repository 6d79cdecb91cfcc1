/**
 * A float64 forward of a Llama/Qwen2-style checkpoint in the low-rank K/V format (contracts B),
 * written plainly from the format's definition, independently of lib/eigen: an owner caches
 * c = k_proj·h (+ bias) per KV head at width k_rank, and its keys are rope(k_up·c) (c itself
 * when there is no k_up); values are v_proj·h at width v_rank; o_proj takes the heads' outputs
 * at width v_rank. Weights by HF tensor name. With `inputs`, each layer's attention runs on
 * the given attention inputs (another model's) instead of its own: per-layer output errors.
 */
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { linear, rmsnorm, rope, ropeInvFreq, silu } from '../reference/transformer64.js';

type Vec = Float64Array;

export interface Eigen64Options {
  /** Per layer: the per-KV-head widths of the cache it reads. */
  readonly kRanks: readonly number[];
  readonly vRanks: readonly number[];
  /** Per layer, per position: attention inputs to use instead of the model's own. */
  readonly inputs?: readonly (readonly Vec[])[];
  /** Called per layer with its attention inputs and its o_proj outputs, per position. */
  readonly onLayer?: (layer: number, h: readonly Vec[], y: readonly Vec[]) => void;
}

const sub = (v: Vec, i: number, n: number): Vec => v.subarray(i * n, (i + 1) * n);

export function eigenForward64(cfg: ModelConfig, plan: LayerPlan, w: ReadonlyMap<string, Float32Array | Float64Array>, tokens: readonly number[], o: Eigen64Options): Float64Array[] {
  const { hiddenSize: H, headDim: D, numHeads: nH, numKvHeads: nKv, intermediateSize: I, rmsNormEps: eps } = cfg;
  const get = (name: string): Float32Array | Float64Array => {
    const t = w.get(name);
    if (!t) throw new Error(`eigenForward64: no tensor '${name}'`);
    return t;
  };
  const at = (i: number, what: string) => `model.layers.${i}.${what}`;
  const embed = get('model.embed_tokens.weight');
  let x: Vec[] = tokens.map((t) => Float64Array.from(embed.subarray(t * H, (t + 1) * H)));
  const caches: { k: Vec[][]; v: Vec[][] }[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const L = plan.layers[i];
    const h = o.inputs ? o.inputs[i].map((r) => Float64Array.from(r)) : x.map((xp) => rmsnorm(xp, get(at(i, 'input_layernorm.weight')), eps));
    const inv = ropeInvFreq(cfg, i);
    const q = h.map((hp, p) => {
      const all = linear(hp, get(at(i, 'self_attn.q_proj.weight')), nH * D, w.get(at(i, 'self_attn.q_proj.bias')));
      return Array.from({ length: nH }, (_, hq) => rope(sub(all, hq, D), p, inv));
    });
    if (L.kvSource === i) {
      const rk = o.kRanks[i];
      const rv = o.vRanks[i];
      const kUp = w.get(at(i, 'self_attn.k_up.weight'));
      caches[i] = {
        k: h.map((hp, p) => {
          const c = linear(hp, get(at(i, 'self_attn.k_proj.weight')), nKv * rk, w.get(at(i, 'self_attn.k_proj.bias')));
          return Array.from({ length: nKv }, (_, g) => rope(kUp ? linear(sub(c, g, rk), kUp, D) : sub(c, g, rk), p, inv));
        }),
        v: h.map((hp) => {
          const c = linear(hp, get(at(i, 'self_attn.v_proj.weight')), nKv * rv, w.get(at(i, 'self_attn.v_proj.bias')));
          return Array.from({ length: nKv }, (_, g) => sub(c, g, rv));
        }),
      };
    }
    const { k, v } = caches[L.kvSource];
    const rv = o.vRanks[i];
    const window = L.attention.kind === 'sliding' ? L.attention.window : Infinity;
    const y = h.map((_, p) => {
      const cat = new Float64Array(nH * rv);
      for (let hq = 0; hq < nH; hq++) {
        const g = Math.floor(hq / (nH / nKv));
        const lo = Math.max(0, p - window + 1);
        const s: number[] = [];
        for (let j = lo; j <= p; j++) {
          let d = 0;
          for (let c = 0; c < D; c++) d += q[p][hq][c] * k[j][g][c];
          s.push(d * cfg.attnScale);
        }
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = lo; j <= p; j++) for (let c = 0; c < rv; c++) cat[hq * rv + c] += (e[j - lo] / sum) * v[j][g][c];
      }
      return linear(cat, get(at(i, 'self_attn.o_proj.weight')), H);
    });
    o.onLayer?.(i, h, y);
    x = x.map((xp, p) => {
      const r = xp.map((a, c) => a + y[p][c]);
      const hm = rmsnorm(r, get(at(i, 'post_attention_layernorm.weight')), eps);
      const gate = linear(hm, get(at(i, 'mlp.gate_proj.weight')), I);
      const up = linear(hm, get(at(i, 'mlp.up_proj.weight')), I);
      const down = linear(gate.map((gv, c) => silu(gv) * up[c]), get(at(i, 'mlp.down_proj.weight')), H);
      return r.map((a, c) => a + down[c]);
    });
  }
  const head = cfg.tieWordEmbeddings ? embed : get('lm_head.weight');
  return x.map((xp) => linear(rmsnorm(xp, get('model.norm.weight'), eps), head, cfg.vocabSize));
}

/** Per-layer ‖y − ŷ‖ / ‖y‖ over all positions. */
export function layerErrors(y: readonly (readonly Vec[])[], yHat: readonly (readonly Vec[])[]): number[] {
  return y.map((rows, l) => {
    let num = 0;
    let den = 0;
    rows.forEach((r, p) => r.forEach((a, c) => {
      num += (a - yHat[l][p][c]) ** 2;
      den += a * a;
    }));
    return Math.sqrt(num / den);
  });
}
