/**
 * Folding the bases into the weights (docs/eigen.md, contracts B), in float64:
 *   k_proj, k_bias ← per KV head U_kᵀ W_k, U_kᵀ b_k   (the cache holds c = U_kᵀ k, pre-RoPE)
 *   k_up           ← U_k [headDim, r_k]              (the kernel expands k = U_k c, then rotates)
 *   v_proj, v_bias ← per KV head U_v(g)ᵀ W_v, U_v(g)ᵀ b_v
 *   o_proj         ← for each query head h, W_o[:, h] U_v(kv(h))   [hidden, numHeads·r_v]
 * With y = x·Wᵀ and W [out, in] row-major, as everywhere in the engine.
 */

/**
 * Rows of a per-head projection W [heads·dim, cols] mapped into each head's basis:
 * out[g·r + j, :] = Σ_d U_g[d][j] · W[g·dim + d, :], with U_g [dim][r] row-major.
 * Biases are the cols = 1 case.
 */
export function foldRows(w: ArrayLike<number>, heads: number, dim: number, cols: number, bases: readonly Float64Array[], r: number): Float64Array {
  const out = new Float64Array(heads * r * cols);
  for (let g = 0; g < heads; g++) {
    const u = bases[g];
    for (let j = 0; j < r; j++) {
      const dst = (g * r + j) * cols;
      for (let d = 0; d < dim; d++) {
        const c = u[d * r + j];
        if (c === 0) continue;
        const src = (g * dim + d) * cols;
        for (let i = 0; i < cols; i++) out[dst + i] += c * w[src + i];
      }
    }
  }
  return out;
}

/**
 * Columns of an output projection W_o [rows, heads·dim] mapped into each head's value basis:
 * out[o, h·r + j] = Σ_d W_o[o, h·dim + d] · U(h)[d][j].
 */
export function foldColumns(w: ArrayLike<number>, rows: number, heads: number, dim: number, basisOfHead: (h: number) => Float64Array, r: number): Float64Array {
  const out = new Float64Array(rows * heads * r);
  for (let h = 0; h < heads; h++) {
    const u = basisOfHead(h);
    for (let o = 0; o < rows; o++) {
      const src = o * heads * dim + h * dim;
      const dst = o * heads * r + h * r;
      for (let j = 0; j < r; j++) {
        let s = 0;
        for (let d = 0; d < dim; d++) s += w[src + d] * u[d * r + j];
        out[dst + j] = s;
      }
    }
  }
  return out;
}
