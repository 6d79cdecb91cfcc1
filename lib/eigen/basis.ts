/**
 * Low-rank bases of cached keys or values: the left singular vectors of the stacked vectors
 * X [n, d] (uncentred, as the authors' SVD: a projection U Uᵀ x must give x back, with no
 * offset). They are the eigenvectors of the Gram matrix XᵀX [d, d], whose eigenvalues are the
 * squared singular values. The Gram matrix is accumulated and decomposed in float64
 * (ml-matrix): d ≤ 256 makes it tiny, the sums over ~10⁵ vectors need float64, and its
 * eigenvalues are accurate to ~1e-16 of the largest, so singular values are resolved down to
 * ~1e-8 of the largest — far below anything the rank choice (mass thresholds in steps of 0.02)
 * can see.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

export interface Basis {
  readonly dim: number;
  /** Orthonormal basis [dim][dim] row-major: column j is the j-th vector, by singular value. */
  readonly vectors: Float64Array;
  /** Singular values, descending (≥ 0). */
  readonly singularValues: Float64Array;
}

/**
 * Adds Σ xxᵀ over `rows` vectors of `dim` values to gram [dim][dim] (float64). Vector r is
 * data[offset + r·stride …], so one head of [rows, heads, dim] data is stride heads·dim.
 */
export function accumulateGram(gram: Float64Array, data: Float32Array, rows: number, dim: number, stride: number, offset: number): void {
  const x = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const base = offset + r * stride;
    for (let i = 0; i < dim; i++) x[i] = data[base + i];
    for (let i = 0; i < dim; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * dim;
      for (let j = i; j < dim; j++) gram[row + j] += xi * x[j];
    }
  }
}

/** The basis of a Gram matrix (upper triangle used). */
export function basisFromGram(gram: Float64Array, dim: number): Basis {
  const m = new Matrix(dim, dim);
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      m.set(i, j, gram[i * dim + j]);
      m.set(j, i, gram[i * dim + j]);
    }
  }
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const vecs = evd.eigenvectorMatrix;
  const order = values.map((_, i) => i).sort((a, b) => values[b] - values[a]);
  const vectors = new Float64Array(dim * dim);
  const singularValues = new Float64Array(dim);
  order.forEach((src, j) => {
    singularValues[j] = Math.sqrt(Math.max(values[src], 0)); // round-off can leave −1e-17
    for (let i = 0; i < dim; i++) vectors[i * dim + j] = vecs.get(i, src);
  });
  return { dim, vectors, singularValues };
}

/** mass[r] = (s₀ + … + s_{r−1}) / Σ s: the normalised singular-value mass of the first r vectors (mass[0] = 0). */
export function singularMass(b: Basis): Float64Array {
  const mass = new Float64Array(b.dim + 1);
  let total = 0;
  for (const s of b.singularValues) total += s;
  let acc = 0;
  for (let r = 1; r <= b.dim; r++) {
    acc += b.singularValues[r - 1];
    mass[r] = total > 0 ? acc / total : 1;
  }
  return mass;
}

/** The smallest r ≥ 1 whose mass reaches `threshold` (the authors' rank rule). */
export function rankForThreshold(mass: Float64Array, threshold: number): number {
  const dim = mass.length - 1;
  for (let r = 1; r <= dim; r++) if (mass[r] >= threshold - 1e-12) return r;
  return dim;
}

/** Fraction of Σ‖x‖² that the first r vectors keep: 1 − ‖X − X U_r U_rᵀ‖² / ‖X‖². */
export function energyKept(b: Basis, r: number): number {
  let kept = 0;
  let total = 0;
  b.singularValues.forEach((s, i) => {
    total += s * s;
    if (i < r) kept += s * s;
  });
  return total > 0 ? kept / total : 1;
}

/** r rounded up to a multiple of 8 (the CUDA kernels' granularity), at most headDim. */
export function roundRank(r: number, headDim: number): number {
  return Math.min(headDim, Math.ceil(r / 8) * 8);
}

/** The first r columns of a basis, [dim][r] row-major. */
export function leadingVectors(b: Basis, r: number): Float64Array {
  const out = new Float64Array(b.dim * r);
  for (let i = 0; i < b.dim; i++) for (let j = 0; j < r; j++) out[i * r + j] = b.vectors[i * b.dim + j];
  return out;
}
