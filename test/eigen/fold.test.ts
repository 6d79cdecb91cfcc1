/**
 * Folding bases into weights (lib/eigen/fold.ts), checked in float64 against the reference
 * transformer: at full rank with rotated bases the folded model is the original; at reduced
 * ranks it is the original with its keys and values projected onto the bases' spans.
 */
import { describe, expect, it } from 'vitest';
import { basisFromGram, leadingVectors, type Basis } from '../../lib/eigen/basis.js';
import { foldColumns, foldRows } from '../../lib/eigen/fold.js';
import { Prng } from '../../lib/model/prng.js';
import { referenceForward } from '../reference/transformer64.js';
import { g, plan, relDiff, sw, tokensOf } from '../reference/helpers.js';
import { hfName } from '../hf/helpers.js';
import { eigenForward64 } from './reference64.js';
import { testWeights, tinyConfig } from './helpers.js';

const cfg = tinyConfig({ qkvBias: true, vocabSize: 50 });
const p = plan(g(0), sw(5, 1), sw(5, 1), g(0)); // layer 3 reads layer 0's cache, layer 2 layer 1's
const canonical = new Map(testWeights(cfg, p).map((t) => [t.name, Float64Array.from(t.data)]));
const { numKvHeads: Hkv, numHeads: Hq, headDim: d, hiddenSize: H } = cfg;

/** Π = U Uᵀ [d][d] of leading vectors U [d][r]: the projection onto their span. */
function projector(u: Float64Array, dim: number, r: number): Float64Array {
  const p = new Float64Array(dim * dim);
  for (let a = 0; a < dim; a++) for (let b = 0; b < dim; b++) for (let j = 0; j < r; j++) p[a * dim + b] += u[a * r + j] * u[b * r + j];
  return p;
}

/** A random orthonormal basis of R^d (the eigenvectors of a random Gram matrix). */
function randomBasis(seed: number): Basis {
  const rng = new Prng(seed);
  const a = Array.from({ length: 3 * d * d }, () => rng.normal());
  const gram = new Float64Array(d * d);
  for (let r = 0; r < 3 * d; r++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) gram[i * d + j] += a[r * d + i] * a[r * d + j];
  return basisFromGram(gram, d);
}

/**
 * HF-named weights of the folded model (owners' K/V and every reader's o_proj folded at ranks
 * rk, rv), and the canonical K/V weights of the original with its keys and values projected.
 */
function folded(rk: number, rv: number) {
  const w = new Map<string, Float64Array>();
  const projected = new Map<string, Float64Array>();
  for (const [name, t] of canonical) w.set(hfName(name, false), t);
  const at = (i: number, what: string) => `model.layers.${i}.self_attn.${what}`;
  for (const owner of [0, 1]) {
    const kU = leadingVectors(randomBasis(10 + owner), rk);
    const vU = [0, 1].map((gi) => leadingVectors(randomBasis(20 + 2 * owner + gi), rv));
    const kb = Array(Hkv).fill(kU);
    w.set(at(owner, 'k_proj.weight'), foldRows(canonical.get(`layers.${owner}.k_proj`)!, Hkv, d, H, kb, rk));
    w.set(at(owner, 'k_proj.bias'), foldRows(canonical.get(`layers.${owner}.k_bias`)!, Hkv, d, 1, kb, rk));
    w.set(at(owner, 'k_up.weight'), kU);
    w.set(at(owner, 'v_proj.weight'), foldRows(canonical.get(`layers.${owner}.v_proj`)!, Hkv, d, H, vU, rv));
    w.set(at(owner, 'v_proj.bias'), foldRows(canonical.get(`layers.${owner}.v_bias`)!, Hkv, d, 1, vU, rv));
    for (const j of p.layers.map((l, i) => (l.kvSource === owner ? i : -1)).filter((i) => i >= 0)) {
      w.set(at(j, 'o_proj.weight'), foldColumns(canonical.get(`layers.${j}.o_proj`)!, H, Hq, d, (h) => vU[Math.floor(h / (Hq / Hkv))], rv));
    }
    // The projected original: keys and values through U Uᵀ, per head, in full width.
    const proj = (what: string, u: (gi: number) => Float64Array, r: number, cols: number) => {
      const src = canonical.get(`layers.${owner}.${what}`)!;
      const out = new Float64Array(src.length);
      for (let gi = 0; gi < Hkv; gi++) {
        const P = projector(u(gi), d, r);
        for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) for (let c = 0; c < cols; c++) out[(gi * d + a) * cols + c] += P[a * d + b] * src[(gi * d + b) * cols + c];
      }
      return out;
    };
    projected.set(`layers.${owner}.k_proj`, proj('k_proj', () => kU, rk, H));
    projected.set(`layers.${owner}.k_bias`, proj('k_bias', () => kU, rk, 1));
    projected.set(`layers.${owner}.v_proj`, proj('v_proj', (gi) => vU[gi], rv, H));
    projected.set(`layers.${owner}.v_bias`, proj('v_bias', (gi) => vU[gi], rv, 1));
  }
  return { w, projected };
}

describe('folding bases into the weights', () => {
  const tokens = tokensOf(12, cfg.vocabSize, 4);
  const original = referenceForward(cfg, p, canonical, tokens);

  it('full rank with rotated bases (k_up present) reproduces the original logits', () => {
    const { w } = folded(d, d);
    const got = eigenForward64(cfg, p, w, tokens, { kRanks: [d, d, d, d], vRanks: [d, d, d, d] });
    expect(relDiff(got, original)).toBeLessThan(1e-10);
    // A wrong basis somewhere must show: drop layer 0's k_up (keys stay rotated by U_kᵀ).
    w.delete('model.layers.0.self_attn.k_up.weight');
    expect(relDiff(eigenForward64(cfg, p, w, tokens, { kRanks: [d, d, d, d], vRanks: [d, d, d, d] }), original)).toBeGreaterThan(1e-3);
  });

  it('reduced ranks equal the original with keys and values projected onto the bases', () => {
    const { w, projected } = folded(8, 16);
    const ref = referenceForward(cfg, p, new Map([...canonical, ...projected]), tokens);
    const got = eigenForward64(cfg, p, w, tokens, { kRanks: [8, 8, 8, 8], vRanks: [16, 16, 16, 16] });
    expect(relDiff(got, ref)).toBeLessThan(1e-10);
    expect(relDiff(got, original)).toBeGreaterThan(1e-3); // and the projection did change the model
  });
});
