/**
 * Bases from Gram matrices (lib/eigen/basis.ts): orthonormal, ordered, with the singular values
 * of the data (checked against ml-matrix's SVD of the data itself), and the authors' rank rule.
 */
import { describe, expect, it } from 'vitest';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { accumulateGram, basisFromGram, energyKept, leadingVectors, rankForThreshold, roundRank, singularMass } from '../../lib/eigen/basis.js';
import { Prng } from '../../lib/model/prng.js';

/** n vectors of dim values with column scales `scale` (so the spectrum is known roughly), row-major. */
function data(n: number, dim: number, scale: (i: number) => number, seed: number): Float32Array {
  const rng = new Prng(seed);
  const x = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) for (let i = 0; i < dim; i++) x[r * dim + i] = scale(i) * rng.normal();
  // Mix the coordinates so the basis is not the identity.
  const mix = basisFromGram(Float64Array.from({ length: dim * dim }, (_, k) => (k % (dim + 1) === 0 ? 2 : 0) + rng.normal()), dim);
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) for (let i = 0; i < dim; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += mix.vectors[i * dim + j] * x[r * dim + j];
    out[r * dim + i] = s;
  }
  return out;
}

describe('bases', () => {
  const dim = 24;
  const n = 300;
  const x = data(n, dim, (i) => 1.2 ** -i, 1);
  const gram = new Float64Array(dim * dim);
  accumulateGram(gram, x, n, dim, dim, 0);
  const b = basisFromGram(gram, dim);

  it('are orthonormal, ordered, and carry the data’s singular values', () => {
    for (let a = 0; a < dim; a++) {
      for (let c = 0; c < dim; c++) {
        let dot = 0;
        for (let i = 0; i < dim; i++) dot += b.vectors[i * dim + a] * b.vectors[i * dim + c];
        expect(Math.abs(dot - (a === c ? 1 : 0))).toBeLessThan(1e-12);
      }
    }
    for (let j = 1; j < dim; j++) expect(b.singularValues[j]).toBeLessThanOrEqual(b.singularValues[j - 1]);
    const svd = new SingularValueDecomposition(new Matrix(Array.from({ length: n }, (_, r) => Array.from(x.subarray(r * dim, (r + 1) * dim)))));
    svd.diagonal.forEach((s, j) => expect(Math.abs(b.singularValues[j] - s) / svd.diagonal[0]).toBeLessThan(1e-10));
    // Each vector is the right singular vector of the data (up to sign).
    const v = svd.rightSingularVectors;
    for (let j = 0; j < 5; j++) {
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += b.vectors[i * dim + j] * v.get(i, j);
      expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-8);
    }
  });

  it('a strided head of interleaved data gets its own Gram matrix', () => {
    const heads = 3;
    const inter = new Float32Array(n * heads * dim).map((_, k) => Math.sin(k * 0.37) + 0.3);
    for (let r = 0; r < n; r++) inter.set(x.subarray(r * dim, (r + 1) * dim), (r * heads + 1) * dim);
    const g1 = new Float64Array(dim * dim);
    accumulateGram(g1, inter, n, dim, heads * dim, dim);
    for (let i = 0; i < dim; i++) for (let j = i; j < dim; j++) expect(g1[i * dim + j]).toBeCloseTo(gram[i * dim + j], 9);
  });

  it('rank rule: smallest r whose singular-value mass reaches the threshold, rounded up to 8', () => {
    const mass = singularMass(b);
    expect(mass[0]).toBe(0);
    expect(mass[dim]).toBeCloseTo(1, 14);
    expect(rankForThreshold(mass, 1)).toBe(dim);
    for (const t of [0.3, 0.5, 0.9, 0.98]) {
      const r = rankForThreshold(mass, t);
      expect(mass[r]).toBeGreaterThanOrEqual(t - 1e-12);
      if (r > 1) expect(mass[r - 1]).toBeLessThan(t);
    }
    expect(roundRank(1, 64)).toBe(8);
    expect(roundRank(17, 64)).toBe(24);
    expect(roundRank(24, 64)).toBe(24);
    expect(roundRank(61, 64)).toBe(64);
    expect(roundRank(13, 12)).toBe(12);
  });

  it('energy kept is what the projection keeps of the data', () => {
    const r = 6;
    const u = leadingVectors(b, r);
    let kept = 0;
    let total = 0;
    for (let row = 0; row < n; row++) {
      const v = x.subarray(row * dim, (row + 1) * dim);
      for (let j = 0; j < r; j++) {
        let c = 0;
        for (let i = 0; i < dim; i++) c += u[i * r + j] * v[i];
        kept += c * c;
      }
      for (const a of v) total += a * a;
    }
    expect(Math.abs(energyKept(b, r) - kept / total)).toBeLessThan(1e-10);
  });
});
