/**
 * An independent float64 reference transformer, written plainly: every layer is recomputed from
 * its definition for all positions at once; no paging, no incremental cache. An owner layer
 * keeps its K/V (keys after RoPE) for all positions; a reader uses its source's K/V as they are.
 * The forward definition is the one the native engine implements (see the task brief / DESIGN.md
 * section 2); weights use the canonical names of lib/model/weights.ts ([out, in], y = x·Wᵀ).
 *
 * Low-rank K/V (Eigen Attention), from its definition: an owner with kvRank {k, v} projects
 * each KV head to k coefficients c and v values; when it has a key basis `k_up` U
 * ([headDim, k]), its key is U·c, rotated at the key's position with the owner's RoPE (without
 * a basis, k must be headDim and c is the key). Each head's attention output is v wide and
 * o_proj takes numHeads × v of them.
 */
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';

export type Weights = ReadonlyMap<string, Float32Array | Float64Array>;
type Vec = Float64Array;
type Arr = ArrayLike<number>;

/** What one layer computed, for tests that look inside (all vectors per position and head). */
export interface LayerTrace {
  readonly layer: number;
  /** Queries after q-norm and RoPE: [pos][head]. */
  readonly q: readonly (readonly Vec[])[];
  /** The keys attended to (after RoPE; the source's for a reader): [pos][kvHead]. */
  readonly k: readonly (readonly Vec[])[];
  /** The values attended to (the source's for a reader): [pos][kvHead]. */
  readonly v: readonly (readonly Vec[])[];
  /** Attention output per head, before o_proj: [pos][head]. */
  readonly attn: readonly (readonly Vec[])[];
}

export interface ReferenceOptions {
  /** Called once per layer, in order, after its attention. */
  readonly onLayer?: (trace: LayerTrace) => void;
}

function get(weights: Weights, name: string, length: number): Arr {
  const w = weights.get(name);
  if (!w) throw new Error(`reference: missing weight '${name}'`);
  if (w.length !== length) throw new Error(`reference: weight '${name}' has ${w.length} values, expected ${length}`);
  return w;
}

/** y = x·Wᵀ (+ b) with W of shape [out, in], row-major. */
export function linear(x: Arr, w: Arr, out: number, bias?: Arr): Vec {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * w[o * n + i];
    y[o] = bias ? s + bias[o] : s;
  }
  return y;
}

/** x / sqrt(mean(x²) + eps) · w */
export function rmsnorm(x: Arr, w: Arr, eps: number): Vec {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * r * w[i];
  return y;
}

/** The RoPE inverse frequencies (length headDim/2) that layer `layer` uses. */
export function ropeInvFreq(cfg: ModelConfig, layer: number): Vec {
  const d = cfg.headDim;
  const local = cfg.localRopeLayers.includes(layer);
  const theta = local ? cfg.ropeThetaLocal : cfg.ropeTheta;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / d);
  if (local) return inv;
  const sc = cfg.ropeScaling;
  if (sc.type === 'linear') {
    for (let i = 0; i < inv.length; i++) inv[i] /= sc.factor;
  } else if (sc.type === 'llama3') {
    const orig = sc.originalMaxPositionEmbeddings;
    const lowWavelen = orig / sc.lowFreqFactor;
    const highWavelen = orig / sc.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i];
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / sc.factor;
      else if (wavelen < highWavelen) inv[i] = f;
      else {
        const smooth = (orig / wavelen - sc.lowFreqFactor) / (sc.highFreqFactor - sc.lowFreqFactor);
        inv[i] = ((1 - smooth) * f) / sc.factor + smooth * f;
      }
    }
  }
  return inv;
}

/** HF rotate_half RoPE of one head vector at position `pos`. */
export function rope(x: Arr, pos: number, invFreq: Arr): Vec {
  const half = x.length / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const a = pos * invFreq[i];
    const c = Math.cos(a);
    const s = Math.sin(a);
    y[i] = x[i] * c - x[i + half] * s;
    y[i + half] = x[i + half] * c + x[i] * s;
  }
  return y;
}

export const silu = (g: number): number => g / (1 + Math.exp(-g));
export const geluTanh = (g: number): number =>
  0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g)));

function heads(x: Vec, n: number, d: number): Vec[] {
  const out: Vec[] = [];
  for (let h = 0; h < n; h++) out.push(x.slice(h * d, (h + 1) * d));
  return out;
}

/** Logits (length vocabSize) of every position of `tokens`. */
export function referenceForward(
  cfg: ModelConfig,
  plan: LayerPlan,
  weights: Weights,
  tokens: readonly number[],
  options: ReferenceOptions = {},
): Float64Array[] {
  const H = cfg.hiddenSize;
  const D = cfg.headDim;
  const nH = cfg.numHeads;
  const nKv = cfg.numKvHeads;
  const I = cfg.intermediateSize;
  const eps = cfg.rmsNormEps;
  const T = tokens.length;
  if (plan.layers.length !== cfg.numLayers) throw new Error('reference: plan and config disagree on the layer count');
  if (nH % nKv !== 0) throw new Error('reference: numHeads must be a multiple of numKvHeads');
  const group = nH / nKv;
  const lw = (i: number, what: string, len: number): Arr => get(weights, `layers.${i}.${what}`, len);

  const embed = get(weights, 'embed', cfg.vocabSize * H);
  let x: Vec[] = tokens.map((t) => {
    if (!Number.isInteger(t) || t < 0 || t >= cfg.vocabSize) throw new Error(`reference: token ${t} out of range`);
    const e = new Float64Array(H);
    for (let c = 0; c < H; c++) e[c] = embed[t * H + c] * cfg.embeddingScale;
    return e;
  });

  const caches: ({ k: Vec[][]; v: Vec[][]; vDim: number } | undefined)[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const L = plan.layers[i];
    const s = L.kvSource;
    if (!(s >= 0 && s <= i) || plan.layers[s].kvSource !== s) {
      throw new Error(`reference: layer ${i} reads layer ${s}, which is not an earlier owner`);
    }
    const invFreq = ropeInvFreq(cfg, i);
    const h = x.map((xp) => rmsnorm(xp, lw(i, 'attn_norm', H), eps));
    const headNorm = (v: Vec, w: Arr): Vec => (cfg.qkNorm ? rmsnorm(v, w, eps) : v);

    const qW = lw(i, 'q_proj', nH * D * H);
    const qB = cfg.qkvBias ? lw(i, 'q_bias', nH * D) : undefined;
    const qNorm = cfg.qkNorm ? lw(i, 'q_norm', D) : new Float64Array(0);
    const q = h.map((hp, p) =>
      heads(linear(hp, qW, nH * D, qB), nH, D).map((qh) => rope(headNorm(qh, qNorm), p, invFreq)),
    );

    if (s === i) {
      const kr = L.kvRank?.k ?? D;
      const vr = L.kvRank?.v ?? D;
      const kW = lw(i, 'k_proj', nKv * kr * H);
      const vW = lw(i, 'v_proj', nKv * vr * H);
      const kB = cfg.qkvBias ? lw(i, 'k_bias', nKv * kr) : undefined;
      const vB = cfg.qkvBias ? lw(i, 'v_bias', nKv * vr) : undefined;
      const kNorm = cfg.qkNorm ? lw(i, 'k_norm', D) : new Float64Array(0);
      const basis = weights.has(`layers.${i}.k_up`) ? lw(i, 'k_up', D * kr) : undefined;
      if (!basis && kr !== D) throw new Error(`reference: layer ${i} has kvRank.k ${kr} < ${D} but no k_up`);
      if (basis && cfg.qkNorm) throw new Error(`reference: layer ${i}: a key basis with q/k norms is undefined`);
      // The full pre-RoPE key of one KV head from its coefficients: U·c.
      const expand = (c: Vec): Vec => {
        if (!basis) return c;
        const key = new Float64Array(D);
        for (let a = 0; a < D; a++) for (let j = 0; j < kr; j++) key[a] += basis[a * kr + j] * c[j];
        return key;
      };
      caches[i] = {
        k: h.map((hp, p) =>
          heads(linear(hp, kW, nKv * kr, kB), nKv, kr).map((kh) => rope(headNorm(expand(kh), kNorm), p, invFreq)),
        ),
        v: h.map((hp) => heads(linear(hp, vW, nKv * vr, vB), nKv, vr)),
        vDim: vr,
      };
    }
    const { k, v, vDim } = caches[s]!;

    const window = L.attention.kind === 'sliding' ? L.attention.window : Infinity;
    const attn: Vec[][] = [];
    for (let p = 0; p < T; p++) {
      const lo = Math.max(0, p - window + 1);
      const outHeads: Vec[] = [];
      for (let hq = 0; hq < nH; hq++) {
        const g = Math.floor(hq / group);
        const scores: number[] = [];
        for (let j = lo; j <= p; j++) {
          let sc = 0;
          for (let c = 0; c < D; c++) sc += q[p][hq][c] * k[j][g][c];
          sc *= cfg.attnScale;
          if (cfg.attnSoftcap > 0) sc = cfg.attnSoftcap * Math.tanh(sc / cfg.attnSoftcap);
          scores.push(sc);
        }
        let m = -Infinity;
        for (const sc of scores) m = Math.max(m, sc);
        const e = scores.map((sc) => Math.exp(sc - m));
        const z = e.reduce((a, b) => a + b, 0);
        const a = new Float64Array(vDim);
        for (let j = lo; j <= p; j++) {
          const wgt = e[j - lo] / z;
          for (let c = 0; c < vDim; c++) a[c] += wgt * v[j][g][c];
        }
        outHeads.push(a);
      }
      attn.push(outHeads);
    }
    options.onLayer?.({ layer: i, q, k, v, attn });

    const oW = lw(i, 'o_proj', H * nH * vDim);
    x = x.map((xp, p) => {
      const cat = new Float64Array(nH * vDim);
      attn[p].forEach((a, hq) => cat.set(a, hq * vDim));
      let o = linear(cat, oW, H);
      if (cfg.sandwichNorm) o = rmsnorm(o, lw(i, 'post_attn_norm', H), eps);
      const y = new Float64Array(H);
      for (let c = 0; c < H; c++) y[c] = xp[c] + o[c];
      return y;
    });

    const act = cfg.activation === 'silu' ? silu : geluTanh;
    x = x.map((xp) => {
      const hm = rmsnorm(xp, lw(i, 'mlp_norm', H), eps);
      const gate = linear(hm, lw(i, 'gate_proj', I * H), I);
      const up = linear(hm, lw(i, 'up_proj', I * H), I);
      const prod = new Float64Array(I);
      for (let c = 0; c < I; c++) prod[c] = act(gate[c]) * up[c];
      let m = linear(prod, lw(i, 'down_proj', H * I), H);
      if (cfg.sandwichNorm) m = rmsnorm(m, lw(i, 'post_mlp_norm', H), eps);
      const y = new Float64Array(H);
      for (let c = 0; c < H; c++) y[c] = xp[c] + m[c];
      return y;
    });
  }

  const finalNorm = get(weights, 'final_norm', H);
  const head = cfg.tieWordEmbeddings ? embed : get(weights, 'lm_head', cfg.vocabSize * H);
  return x.map((xp) => {
    const logits = linear(rmsnorm(xp, finalNorm, eps), head, cfg.vocabSize);
    if (cfg.finalSoftcap > 0) {
      for (let t = 0; t < logits.length; t++) logits[t] = cfg.finalSoftcap * Math.tanh(logits[t] / cfg.finalSoftcap);
    }
    return logits;
  });
}
