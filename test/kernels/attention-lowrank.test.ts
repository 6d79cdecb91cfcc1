/**
 * The CPU attention with low-rank keys (Backend::attentionLowRankKeys: k = rope(U·c, key
 * position) expanded inside the kernel), and plain attention with V narrower than K, against
 * a float64 reference written here: expand, rotate (the reference model's RoPE), softmax, V.
 * Random inputs, poisoned outputs (runOp), ragged batches of prefill chunks and decode rows,
 * windows shorter and longer than the context, GQA groups 1/2/4 (and MQA), head dims 64/128
 * (and 256), ranks 8..head dim, f32 and bf16 pages, soft-caps, llama3 RoPE.
 */
import { describe, expect, it } from 'vitest';
import { llamaConfig } from '../../lib/model/config.js';
import type { NativeRope } from '../../lib/native.js';
import { rope, ropeInvFreq } from '../reference/transformer64.js';
import { Rng, SEED, relErr, runOp } from '../gpu/twin.js';
import { CASES, type LowRankCase, type Scenario, opOf, scenario } from './lowrank-cases.js';

function invFreqOf(r: NativeRope, headDim: number): Float64Array {
  const ropeScaling = r.scaling === 'llama3'
    ? { type: 'llama3' as const, factor: r.factor ?? 1, lowFreqFactor: r.lowFreqFactor ?? 1, highFreqFactor: r.highFreqFactor ?? 4, originalMaxPositionEmbeddings: r.originalMaxPosition ?? 8192 }
    : { type: 'default' as const };
  const cfg = llamaConfig({ vocabSize: 1, hiddenSize: headDim, intermediateSize: 1, numLayers: 1, numHeads: 1, numKvHeads: 1, headDim, ropeTheta: r.theta, ropeScaling });
  return Float64Array.from(ropeInvFreq(cfg, 0));
}

/** out[T, numHeads, vDim] in float64, straight from the definition. */
function reference(c: LowRankCase, a: Scenario): Float64Array {
  const { kv } = a;
  const bs = kv.blockSize, G = c.numHeads / c.numKvHeads, pageElems = bs * kv.numKvHeads * (kv.kDim + kv.vDim);
  const inv = c.plain ? undefined : invFreqOf(a.rope!, c.headDim);
  const at = (s: number, j: number) => {
    const page = kv.tables[s * kv.tableStride + Math.floor(j / bs) * kv.pagesPerBlock + kv.slot];
    if (page < 0) throw new Error(`reference: sequence ${s} position ${j} has no page`);
    return { base: page * pageElems, off: j % bs };
  };
  // Keys per (sequence, KV head, position), expanded and rotated once.
  const keyCache = new Map<string, Float64Array>();
  const key = (s: number, g: number, j: number): Float64Array => {
    const id = `${s}/${g}/${j}`;
    let k = keyCache.get(id);
    if (k) return k;
    const { base, off } = at(s, j);
    const coef = kv.arena.subarray(base + (g * bs + off) * kv.kDim, base + (g * bs + off + 1) * kv.kDim);
    if (c.plain) {
      k = Float64Array.from(coef);
    } else {
      const u = new Float64Array(c.headDim);
      for (let i = 0; i < c.headDim; i++) {
        let x = 0;
        for (let r = 0; r < kv.kDim; r++) x += a.basis![i * kv.kDim + r] * coef[r];
        u[i] = x;
      }
      k = rope(u, j, inv!);
    }
    keyCache.set(id, k);
    return k;
  };
  const value = (s: number, g: number, j: number) => {
    const { base, off } = at(s, j);
    const v0 = base + kv.numKvHeads * bs * kv.kDim + (g * bs + off) * kv.vDim;
    return kv.arena.subarray(v0, v0 + kv.vDim);
  };

  const out = new Float64Array(a.q.length / c.headDim * kv.vDim);
  let t = 0;
  c.numNew.forEach((n, s) => {
    for (let r = 0; r < n; r++, t++) {
      const p = c.pastLen[s] + r, lo = a.window > 0 ? Math.max(0, p - a.window + 1) : 0;
      for (let h = 0; h < c.numHeads; h++) {
        const g = Math.floor(h / G), q = a.q.subarray((t * c.numHeads + h) * c.headDim, (t * c.numHeads + h + 1) * c.headDim);
        const scores: number[] = [];
        for (let j = lo; j <= p; j++) {
          const k = key(s, g, j);
          let x = 0;
          for (let d = 0; d < c.headDim; d++) x += q[d] * k[d];
          x *= a.scale;
          scores.push(a.softcap > 0 ? a.softcap * Math.tanh(x / a.softcap) : x);
        }
        const m = Math.max(...scores);
        const w = scores.map((x) => Math.exp(x - m));
        const sum = w.reduce((x, y) => x + y, 0);
        const o = out.subarray((t * c.numHeads + h) * kv.vDim, (t * c.numHeads + h + 1) * kv.vDim);
        w.forEach((wj, i) => {
          const v = value(s, g, lo + i);
          for (let d = 0; d < kv.vDim; d++) o[d] += (wj / sum) * v[d];
        });
      }
    }
  });
  return out;
}

describe(`CPU attention with low-rank keys vs a float64 reference (seed ${SEED})`, () => {
  const rng = new Rng(SEED + 7);
  for (const c of CASES) {
    it(c.name, () => {
      const args = scenario(c, rng, { roundBasis: false });
      const out = runOp('cpu', opOf(c), args).out;
      const ref = reference(c, args);
      expect(out.length).toBe(ref.length);
      const err = relErr(out, ref);
      expect(err, `${c.name}: rel err ${err}`).toBeLessThanOrEqual(1e-5);
    });
  }

  it('an identity basis (rank = head dim) equals attention() on keys rotated by the rope op', () => {
    const c: LowRankCase = { name: 'identity', numNew: [9, 1], pastLen: [30, 70], numHeads: 4, numKvHeads: 2, headDim: 64, kDim: 64, vDim: 64, window: 40, dtype: 'f32', rope: { theta: 10000, scaling: 'default' } };
    const args = scenario(c, rng, { roundBasis: false });
    const basis = new Float32Array(64 * 64);
    for (let i = 0; i < 64; i++) basis[i * 64 + i] = 1;
    const lowRank = runOp('cpu', 'attentionLowRankKeys', { ...args, basis }).out;
    // The same keys rotated at their positions by the rope op, in place in a copy of the arena.
    const { kv } = args;
    const arena = Float32Array.from(kv.arena);
    const pageElems = kv.blockSize * kv.numKvHeads * (kv.kDim + kv.vDim), rowsPerPage = kv.blockSize * kv.numKvHeads;
    for (let s = 0; s < c.numNew.length; s++)
      for (let b = 0; b * kv.pagesPerBlock < kv.tableStride; b++) {
        const page = kv.tables[s * kv.tableStride + b * kv.pagesPerBlock + kv.slot];
        if (page < 0) continue;
        const k = arena.subarray(page * pageElems, page * pageElems + rowsPerPage * kv.kDim);
        const positions = Int32Array.from({ length: rowsPerPage }, (_, i) => b * kv.blockSize + (i % kv.blockSize));
        k.set(runOp('cpu', 'rope', { x: Float32Array.from(k), positions, heads: 1, headDim: 64, rope: args.rope }).out);
      }
    const plain = runOp('cpu', 'attention', { ...args, kv: { ...kv, arena } }).out;
    expect(relErr(lowRank, plain)).toBeLessThanOrEqual(1e-6);
  });

  it('bad arguments: a clear error naming the op and what is wrong', () => {
    const c: LowRankCase = { name: 'errors', numNew: [2], pastLen: [20], numHeads: 4, numKvHeads: 2, headDim: 64, kDim: 32, vDim: 32 };
    const args = scenario(c, rng, { roundBasis: true });
    const run = (over: Record<string, unknown>) => () => runOp('cpu', 'attentionLowRankKeys', { ...args, ...over });
    expect(run({ headDim: 16, basis: new Float32Array(16 * 32), q: new Float32Array(2 * 4 * 16).fill(1) })).toThrow(/attentionLowRankKeys: key rank \(kv.kDim 32\) exceeds the head dim 16/);
    expect(run({ headDim: 63, basis: new Float32Array(63 * 32), q: new Float32Array(2 * 4 * 63).fill(1) })).toThrow(/attentionLowRankKeys: head dim 63 must be positive and even/);
    expect(run({ numHeads: 3, q: new Float32Array(2 * 3 * 64).fill(1) })).toThrow(/attentionLowRankKeys: numHeads 3 is not a positive multiple of numKvHeads 2/);
    const tables = Int32Array.from(args.kv.tables);
    tables[0] = -1;
    expect(run({ kv: { ...args.kv, tables } })).toThrow(/attentionLowRankKeys: sequence 0 position 0: page id -1 is missing/);
    expect(run({ rope: { theta: 0, scaling: 'default' } })).toThrow(/theta and factor must be positive/);
    // The kernels mask before they scale: a scale <= 0 would turn masked keys into NaN or +inf.
    expect(run({ scale: 0 })).toThrow(/attentionLowRankKeys: scale must be positive and finite \(got 0/);
    expect(run({ scale: Number.NaN })).toThrow(/attentionLowRankKeys: scale must be positive and finite/);
    expect(run({ softcap: -1 })).toThrow(/attentionLowRankKeys: softcap must be finite and >= 0, 0 for none \(got -1/);
    // The plain op on the same pages (keys of width kDim 32, so q of that width).
    const plain = { ...args, q: Float32Array.from({ length: 2 * 4 * 32 }, () => rng.normal()) };
    expect(() => runOp('cpu', 'attention', { ...plain, scale: -0.5 })).toThrow(/attention: scale must be positive and finite \(got -0.5/);
    expect(() => runOp('cpu', 'attention', { ...plain, softcap: Number.POSITIVE_INFINITY })).toThrow(/attention: softcap must be finite/);
    expect(runOp('cpu', 'attention', plain).out.every(Number.isFinite)).toBe(true);  // the good call still runs
  });
});
