/**
 * The reference's low-rank K/V path against its full-width path: a low-rank model equals the
 * full-width model whose key projection is U_k·W_c (keys expanded from their coefficients)
 * and whose value/output projections are U_v·W_v and W_o·U_vᵀ per head (values kept in the
 * basis U_v, orthonormal columns), so both must give the same logits.
 */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../lib/model/config.js';
import type { KvRank, LayerPlan, LayerSpec } from '../../lib/plan/types.js';
import { Prng } from '../../lib/model/prng.js';
import { referenceForward, type Weights } from './transformer64.js';
import { g, gemmaLike, llamaLike, plan, relDiff, sw, tokensOf, weightsFor } from './helpers.js';

const ranked = (l: LayerSpec, r: KvRank | undefined): LayerSpec => (r ? { ...l, kvRank: r } : l);

/** [rows, cols] with orthonormal columns (cols <= rows). */
function orthonormal(rows: number, cols: number, rng: Prng): Float64Array {
  const m = Float64Array.from({ length: rows * cols }, () => rng.normal());
  for (let j = 0; j < cols; j++) {
    for (let p = 0; p < j; p++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += m[i * cols + j] * m[i * cols + p];
      for (let i = 0; i < rows; i++) m[i * cols + j] -= dot * m[i * cols + p];
    }
    let n = 0;
    for (let i = 0; i < rows; i++) n += m[i * cols + j] ** 2;
    for (let i = 0; i < rows; i++) m[i * cols + j] /= Math.sqrt(n);
  }
  return m;
}

/**
 * Low-rank weights for `lowPlan` (random) and the full-width weights for `fullPlan` that
 * compute the same function. Every projection is per KV head (k, v) or per query head (o).
 */
function equivalentModels(cfg: ModelConfig, lowPlan: LayerPlan, fullPlan: LayerPlan, seed: number): { low: Weights; full: Weights } {
  const D = cfg.headDim;
  const H = cfg.hiddenSize;
  const rng = new Prng(seed);
  const low = weightsFor(cfg, fullPlan, seed);
  const full = new Map(low);
  const vBases: Float64Array[] = [];
  lowPlan.layers.forEach((l, i) => {
    const src = lowPlan.layers[l.kvSource];
    const kr = src.kvRank?.k ?? D;
    const vr = src.kvRank?.v ?? D;
    if (l.kvSource === i) {
      const Uk = orthonormal(D, kr, rng);
      const Uvi = orthonormal(D, vr, rng);
      vBases[i] = Uvi;
      const c = Float64Array.from({ length: cfg.numKvHeads * kr * H }, () => rng.normal() / Math.sqrt(H));
      const vr_ = Float64Array.from({ length: cfg.numKvHeads * vr * H }, () => rng.normal() / Math.sqrt(H));
      low.set(`layers.${i}.k_proj`, c);
      low.set(`layers.${i}.v_proj`, vr_);
      if (kr < D) low.set(`layers.${i}.k_up`, Uk);
      // Full width: W_k = U_k·W_c and W_v = U_v·W_v' per KV head.
      full.set(`layers.${i}.k_proj`, perHeadUp(kr < D ? Uk : identity(D), c, cfg.numKvHeads, D, kr, H));
      full.set(`layers.${i}.v_proj`, perHeadUp(Uvi, vr_, cfg.numKvHeads, D, vr, H));
      if (cfg.qkvBias) {
        const kb = Float64Array.from({ length: cfg.numKvHeads * kr }, () => 0.1 * rng.normal());
        const vb = Float64Array.from({ length: cfg.numKvHeads * vr }, () => 0.1 * rng.normal());
        low.set(`layers.${i}.k_bias`, kb);
        low.set(`layers.${i}.v_bias`, vb);
        full.set(`layers.${i}.k_bias`, perHeadUp(kr < D ? Uk : identity(D), kb, cfg.numKvHeads, D, kr, 1));
        full.set(`layers.${i}.v_bias`, perHeadUp(Uvi, vb, cfg.numKvHeads, D, vr, 1));
      }
    }
    // o_proj: W_o' [H, numHeads × vr] at rank; the full one is W_o'·U_vᵀ per head.
    const U = vBases[l.kvSource];
    const oLow = Float64Array.from({ length: H * cfg.numHeads * vr }, () => rng.normal() / Math.sqrt(cfg.numHeads * vr));
    low.set(`layers.${i}.o_proj`, oLow);
    const oFull = new Float64Array(H * cfg.numHeads * D);
    for (let r = 0; r < H; r++) {
      for (let h = 0; h < cfg.numHeads; h++) {
        for (let a = 0; a < D; a++) {
          let s = 0;
          for (let j = 0; j < vr; j++) s += oLow[r * cfg.numHeads * vr + h * vr + j] * U[a * vr + j];
          oFull[r * cfg.numHeads * D + h * D + a] = s;
        }
      }
    }
    full.set(`layers.${i}.o_proj`, oFull);
  });
  return { low, full };

  function identity(n: number): Float64Array {
    const m = new Float64Array(n * n);
    for (let i = 0; i < n; i++) m[i * n + i] = 1;
    return m;
  }
}

/** out[h·D + a, :] = Σ_j U[a, j] · w[h·r + j, :] for each of `heads` blocks ([heads·r, cols] → [heads·D, cols]). */
function perHeadUp(U: Float64Array, w: Float64Array, heads: number, D: number, r: number, cols: number): Float64Array {
  const out = new Float64Array(heads * D * cols);
  for (let h = 0; h < heads; h++) {
    for (let a = 0; a < D; a++) {
      for (let c = 0; c < cols; c++) {
        let s = 0;
        for (let j = 0; j < r; j++) s += U[a * r + j] * w[(h * r + j) * cols + c];
        out[(h * D + a) * cols + c] = s;
      }
    }
  }
  return out;
}

describe('reference: low-rank K/V equal the full-width model they expand to', () => {
  const cases: { name: string; cfg: ModelConfig; layers: LayerSpec[]; ranks: (KvRank | undefined)[] }[] = [
    {
      name: 'keys and values at rank, readers sharing them, a sliding owner',
      cfg: llamaLike(4),
      layers: [g(0), g(0), sw(3, 2), sw(2, 2)],
      ranks: [{ k: 3, v: 5 }, { k: 3, v: 5 }, { k: 8, v: 2 }, { k: 8, v: 2 }],
    },
    {
      name: 'values only, keys only, full width, with biases',
      cfg: llamaLike(3, { qkvBias: true }),
      layers: [g(0), g(1), g(2)],
      ranks: [{ k: 8, v: 3 }, { k: 5, v: 8 }, undefined],
    },
    {
      name: 'Gemma-like switches (q/k norm with full-width keys, local RoPE on the owner of a reader)',
      cfg: gemmaLike(3),
      layers: [g(0), g(0), sw(4, 2)],
      ranks: [{ k: 8, v: 4 }, { k: 8, v: 4 }, { k: 8, v: 7 }],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const lowPlan = plan(...c.layers.map((l, i) => ranked(l, c.ranks[i])));
      const fullPlan = plan(...c.layers);
      const { low, full } = equivalentModels(c.cfg, lowPlan, fullPlan, 11);
      const tokens = tokensOf(9, c.cfg.vocabSize, 2);
      const a = referenceForward(c.cfg, lowPlan, low, tokens);
      const b = referenceForward(c.cfg, fullPlan, full, tokens);
      expect(relDiff(a, b)).toBeLessThan(1e-12);
      // and the ranks matter: the same low-rank weights under other bases differ
      const { low: other } = equivalentModels(c.cfg, lowPlan, fullPlan, 12);
      expect(relDiff(referenceForward(c.cfg, lowPlan, other, tokens), b)).toBeGreaterThan(1e-3);
    });
  }

  it('refuses low-rank keys without their basis, and a basis with q/k norms', () => {
    const cfg = llamaLike(1);
    const p = plan(ranked(g(0), { k: 4, v: 8 }));
    const w = new Map(weightsFor(cfg, p, 1));
    w.delete('layers.0.k_up');
    expect(() => referenceForward(cfg, p, w, [1])).toThrow(/layer 0 has kvRank.k 4 < 8 but no k_up/);
    const gem = gemmaLike(1);
    const withBasis = new Map(weightsFor(gem, plan(g(0)), 1));
    withBasis.set('layers.0.k_up', Float64Array.from({ length: 64 }, (_, i) => (i % 9 === 0 ? 1 : 0)));
    expect(() => referenceForward(gem, plan(g(0)), withBasis, [1])).toThrow(/key basis with q\/k norms/);
  });
});
