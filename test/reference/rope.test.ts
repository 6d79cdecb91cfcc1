/** (f) RoPE as the reference applies it: relative-position property, and each scaling's frequencies. */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../lib/model/config.js';
import { Prng } from '../../lib/model/prng.js';
import { rope, ropeInvFreq } from './transformer64.js';
import { llamaLike } from './helpers.js';

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, x, i) => s + x * b[i], 0);
const randVec = (p: Prng, n: number) => Float64Array.from({ length: n }, () => p.normal());

const D = 16;
const base = llamaLike(3, { headDim: D, ropeTheta: 10000, ropeThetaLocal: 500, localRopeLayers: [2] });
const configs: [string, ModelConfig, number][] = [
  ['default', base, 0],
  ['linear', { ...base, ropeScaling: { type: 'linear', factor: 4 } }, 0],
  ['llama3', { ...base, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } }, 0],
  ['local layer (ignores scaling)', { ...base, ropeScaling: { type: 'linear', factor: 4 } }, 2],
];

describe('rope', () => {
  it.each(configs)('%s: q·k depends only on the relative position, and norms are kept', (_, cfg, layer) => {
    const inv = ropeInvFreq(cfg, layer);
    const p = new Prng(21);
    for (let trial = 0; trial < 20; trial++) {
      const q = randVec(p, D);
      const k = randVec(p, D);
      const m = Math.floor(p.uniform() * 3000);
      const n = Math.floor(p.uniform() * 3000);
      const shift = Math.floor(p.uniform() * 5000);
      const ref = dot(rope(q, m, inv), rope(k, n, inv));
      expect(dot(rope(q, m + shift, inv), rope(k, n + shift, inv))).toBeCloseTo(ref, 8);
      expect(dot(rope(q, m, inv), rope(q, m, inv))).toBeCloseTo(dot(q, q), 9);
    }
  });

  it('is the identity at position 0 and a plane rotation by pos·inv_freq for d = 2', () => {
    const x = Float64Array.from([0.3, -1.7]);
    expect(Array.from(rope(x, 0, [0.25]))).toEqual([0.3, -1.7]);
    const a = 3 * 0.25;
    const y = rope(x, 3, [0.25]);
    expect(y[0]).toBeCloseTo(0.3 * Math.cos(a) + 1.7 * Math.sin(a), 14);
    expect(y[1]).toBeCloseTo(-1.7 * Math.cos(a) + 0.3 * Math.sin(a), 14);
  });

  it('pairs element i with element i + d/2 (rotate_half), not adjacent elements', () => {
    const x = new Float64Array(D);
    x[0] = 1; // partner is x[D/2]
    const y = rope(x, 1, ropeInvFreq(base, 0));
    expect(y[0]).toBeCloseTo(Math.cos(1), 14);
    expect(y[D / 2]).toBeCloseTo(Math.sin(1), 14);
    expect(y[1]).toBe(0);
  });

  it('default frequencies are θ^(−2i/d); linear scaling at position f·p equals default at p', () => {
    const inv = ropeInvFreq(base, 0);
    inv.forEach((f, i) => expect(f).toBeCloseTo(10000 ** (-(2 * i) / D), 15));
    const lin = ropeInvFreq({ ...base, ropeScaling: { type: 'linear', factor: 4 } }, 0);
    const x = randVec(new Prng(1), D);
    const a = rope(x, 7, inv);
    const b = rope(x, 28, lin);
    a.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 12));
  });

  it('llama3 keeps high frequencies, divides low ones by the factor and blends in between', () => {
    const cfg = configs[2][1];
    const inv = ropeInvFreq(cfg, 0);
    const plain = ropeInvFreq(base, 0);
    // wavelengths 2π·10000^(i/8): i=0 → 6.3 (< 64/4: high), i=1,2 → 19.9, 62.8 (medium), i≥3 → > 64 (low)
    expect(inv[0]).toBe(plain[0]);
    for (const i of [1, 2]) {
      expect(inv[i]).toBeLessThan(plain[i]);
      expect(inv[i]).toBeGreaterThan(plain[i] / 8);
    }
    expect(inv[1] / plain[1]).toBeGreaterThan(inv[2] / plain[2]); // blends smoothly toward /factor
    for (let i = 3; i < D / 2; i++) expect(inv[i]).toBeCloseTo(plain[i] / 8, 15);
    // the blend at i=1: smooth = (64/λ − 1)/(4 − 1)
    const lam = (2 * Math.PI) / plain[1];
    const smooth = (64 / lam - 1) / 3;
    expect(inv[1]).toBeCloseTo((1 - smooth) * plain[1] / 8 + smooth * plain[1], 15);
  });

  it('local layers use ropeThetaLocal without scaling', () => {
    const cfg = configs[3][1];
    ropeInvFreq(cfg, 2).forEach((f, i) => expect(f).toBeCloseTo(500 ** (-(2 * i) / D), 15));
    ropeInvFreq(cfg, 1).forEach((f, i) => expect(f).toBeCloseTo(10000 ** (-(2 * i) / D) / 4, 15));
  });
});
