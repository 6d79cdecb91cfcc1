/**
 * Properties of the reference that hold by the definition of the plan, checked without trusting
 * the reference's own arithmetic: (b) windows wider than the sequence change nothing, (c) window 1
 * attends only to the token itself, (d) a reader uses its source's K/V, (e) causality, plus GQA
 * head mapping and the soft-caps.
 */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../lib/model/config.js';
import type { LayerPlan } from '../../lib/plan/types.js';
import { referenceForward, type LayerTrace, type Weights } from './transformer64.js';
import { g, gemmaLike, llamaLike, plan, relDiff, standardPlan, sw, tokensOf, weightsFor } from './helpers.js';

const T = 9;
const cfgs: [string, ModelConfig][] = [
  ['llama-like', llamaLike(3)],
  ['gemma-like', gemmaLike(3)],
];

const traces = (cfg: ModelConfig, p: LayerPlan, w: Weights, tokens: number[]): LayerTrace[] => {
  const out: LayerTrace[] = [];
  referenceForward(cfg, p, w, tokens, { onLayer: (t) => out.push(t) });
  return out;
};

describe('(b) sliding windows', () => {
  it.each(cfgs)('%s: a window ≥ the sequence length gives the global logits exactly', (_, cfg) => {
    const w = weightsFor(cfg, standardPlan(3), 2);
    const tokens = tokensOf(T, cfg.vocabSize);
    const global = referenceForward(cfg, standardPlan(3), w, tokens);
    expect(global.every((l) => l.every(Number.isFinite))).toBe(true);
    for (const W of [T, T + 1, 4096]) {
      expect(referenceForward(cfg, plan(sw(W, 0), sw(W, 1), sw(W, 2)), w, tokens)).toEqual(global);
      expect(referenceForward(cfg, plan(g(0), sw(W, 1), g(2)), w, tokens)).toEqual(global);
    }
  });

  it.each(cfgs)('%s: a window W < length changes exactly the positions ≥ W', (_, cfg) => {
    const w = weightsFor(cfg, standardPlan(3), 2);
    const tokens = tokensOf(T, cfg.vocabSize);
    const global = referenceForward(cfg, standardPlan(3), w, tokens);
    const W = 4;
    const slid = referenceForward(cfg, plan(g(0), sw(W, 1), g(2)), w, tokens);
    for (let p = 0; p < T; p++) {
      if (p < W) expect(slid[p]).toEqual(global[p]);
      else expect(relDiff([slid[p]], [global[p]])).toBeGreaterThan(1e-6);
    }
  });
});

describe('(c) window 1', () => {
  it.each(cfgs)('%s: every head outputs its own position’s v (traced)', (_, cfg) => {
    const p = plan(sw(1, 0), sw(1, 1), sw(1, 1));
    const w = weightsFor(cfg, p, 3);
    const group = cfg.numHeads / cfg.numKvHeads;
    for (const t of traces(cfg, p, w, tokensOf(T, cfg.vocabSize))) {
      for (let pos = 0; pos < T; pos++) {
        for (let hq = 0; hq < cfg.numHeads; hq++) expect(t.attn[pos][hq]).toEqual(t.v[pos][Math.floor(hq / group)]);
      }
    }
  });

  it.each(cfgs)('%s: logits at p equal those of the lone token p at position 0', (_, cfg) => {
    const p = plan(sw(1, 0), sw(1, 0), sw(1, 2));
    const w = weightsFor(cfg, p, 3);
    const tokens = tokensOf(T, cfg.vocabSize);
    const all = referenceForward(cfg, p, w, tokens);
    tokens.forEach((tok, pos) => expect(all[pos]).toEqual(referenceForward(cfg, p, w, [tok])[0]));
  });
});

describe('(d) KV sharing', () => {
  // Layer 0 is made a no-op on the residual stream (o_proj = down_proj = 0) and layer 1 gets
  // layer 0's attn_norm, so layer 1's normalised input equals layer 0's. An owner layer 1 given
  // copies of layer 0's K/V weights then computes exactly layer 0's K/V: a reader of layer 0 must
  // give the same logits. Layer 1 is in localRopeLayers for neither, so keys rotate alike.
  const kvNames = ['k_proj', 'v_proj', 'k_bias', 'v_bias', 'k_norm'];
  function setup(cfg: ModelConfig, reader: LayerPlan, owner: LayerPlan, neutralise: boolean) {
    const wOwner = weightsFor(cfg, owner, 5);
    const zero = (n: string) => wOwner.set(n, new Float32Array(wOwner.get(n)!.length));
    if (neutralise) {
      zero('layers.0.o_proj');
      zero('layers.0.down_proj');
    }
    wOwner.set('layers.1.attn_norm', wOwner.get('layers.0.attn_norm')!);
    const wCopied = new Map(wOwner);
    for (const n of kvNames) if (wOwner.has(`layers.0.${n}`)) wCopied.set(`layers.1.${n}`, wOwner.get(`layers.0.${n}`)!);
    const wReader = new Map([...wOwner].filter(([n]) => !kvNames.some((k) => n === `layers.1.${k}`)));
    expect(wReader.size).toBeLessThan(wOwner.size);
    const tokens = tokensOf(T, cfg.vocabSize, 1);
    return {
      reader: referenceForward(cfg, reader, wReader, tokens),
      copied: referenceForward(cfg, owner, wCopied, tokens),
      own: referenceForward(cfg, owner, wOwner, tokens),
    };
  }
  const variants: [string, ModelConfig, LayerPlan, LayerPlan][] = [
    ['llama-like, global reader', llamaLike(3), plan(g(0), g(0), g(2)), plan(g(0), g(1), g(2))],
    ['gemma-like, global reader', gemmaLike(3, { localRopeLayers: [2] }), plan(g(0), g(0), g(2)), plan(g(0), g(1), g(2))],
    ['gemma-like, sliding reader of a global source', gemmaLike(3, { localRopeLayers: [] }), plan(g(0), sw(3, 0), sw(2, 2)), plan(g(0), sw(3, 1), sw(2, 2))],
    ['llama-like, sliding reader of a wider sliding source', llamaLike(3), plan(sw(5, 0), sw(3, 0), g(2)), plan(sw(5, 0), sw(3, 1), g(2))],
  ];

  it.each(variants)('%s: equals an owner computing the same K/V', (_, cfg, reader, owner) => {
    const r = setup(cfg, reader, owner, true);
    expect(relDiff(r.reader, r.copied)).toBeLessThan(1e-12);
    expect(relDiff(r.own, r.copied)).toBeGreaterThan(1e-4); // the K/V weights do matter
  });

  it.each(variants)('%s: uses the K/V computed at the source, not recomputed from its own input', (_, cfg, reader, owner) => {
    const r = setup(cfg, reader, owner, false);
    expect(relDiff(r.reader, r.copied)).toBeGreaterThan(1e-4);
    const tr = traces(cfg, reader, weightsFor(cfg, reader, 5), tokensOf(T, cfg.vocabSize));
    expect(tr[1].k).toBe(tr[0].k);
    expect(tr[1].v).toBe(tr[0].v);
  });

  it('a cla2 plan runs on the weights randomWeights makes for it (no K/V weights for readers)', () => {
    const cfg = gemmaLike(4);
    const p = plan(g(0), g(0), sw(4, 2), sw(4, 2));
    const w = weightsFor(cfg, p, 6);
    expect(w.has('layers.1.k_proj') || w.has('layers.3.v_proj')).toBe(false);
    const logits = referenceForward(cfg, p, w, tokensOf(T, cfg.vocabSize));
    expect(logits.every((l) => l.every(Number.isFinite))).toBe(true);
  });

  it('rejects a reader of a later layer, of a reader, and low-rank plans over full-width weights', () => {
    const cfg = llamaLike(3);
    const w = weightsFor(cfg, standardPlan(3));
    expect(() => referenceForward(cfg, plan(g(0), g(2), g(2)), w, [1])).toThrow(/layer 1/);
    expect(() => referenceForward(cfg, plan(g(0), g(0), g(1)), w, [1])).toThrow(/layer 2/);
    const lowRank = plan(g(0), g(1), { attention: { kind: 'global' }, kvSource: 2, kvRank: { k: 4, v: 4 } });
    expect(() => referenceForward(cfg, lowRank, w, [1])).toThrow(/'layers\.2\.k_proj' has \d+ values, expected/);
  });
});

describe('(e) causality', () => {
  it.each(cfgs)('%s: logits at t do not change when later tokens change', (_, cfg) => {
    const p = plan(g(0), sw(3, 1), g(0));
    const w = weightsFor(cfg, p, 7);
    const tokens = tokensOf(T, cfg.vocabSize);
    const base = referenceForward(cfg, p, w, tokens);
    for (const t of [0, 3, T - 2]) {
      const changed = tokens.map((x, i) => (i > t ? (x + 1 + i) % cfg.vocabSize : x));
      const other = referenceForward(cfg, p, w, changed);
      for (let i = 0; i <= t; i++) expect(other[i]).toEqual(base[i]);
      expect(relDiff([other[t + 1]], [base[t + 1]])).toBeGreaterThan(1e-6);
    }
  });
});

describe('GQA and soft-caps', () => {
  it('a GQA model equals the MHA model whose K/V heads repeat each group’s head', () => {
    const gqa = llamaLike(2, { numHeads: 4, numKvHeads: 2, qkvBias: true, qkNorm: true });
    const mha: ModelConfig = { ...gqa, numKvHeads: 4 };
    const p = plan(g(0), sw(4, 1));
    const w = weightsFor(gqa, p, 8);
    const wm = new Map(w);
    const D = gqa.headDim;
    const H = gqa.hiddenSize;
    for (const layer of [0, 1]) {
      const rep = (name: string, rowLen: number) => {
        const src = w.get(`layers.${layer}.${name}`)!;
        const out = new Float32Array(4 * D * rowLen);
        for (let hq = 0; hq < 4; hq++) out.set(src.subarray(Math.floor(hq / 2) * D * rowLen, (Math.floor(hq / 2) + 1) * D * rowLen), hq * D * rowLen);
        wm.set(`layers.${layer}.${name}`, out);
      };
      rep('k_proj', H);
      rep('v_proj', H);
      rep('k_bias', 1);
      rep('v_bias', 1);
    }
    const tokens = tokensOf(T, gqa.vocabSize);
    expect(referenceForward(mha, p, wm, tokens)).toEqual(referenceForward(gqa, p, w, tokens));
  });

  it('a tiny attention soft-cap flattens the scores: attention becomes the mean of the values', () => {
    const cfg = llamaLike(1, { attnSoftcap: 1e-9 });
    const p = plan(sw(4, 0));
    const [t] = traces(cfg, p, weightsFor(cfg, p, 9), tokensOf(T, cfg.vocabSize));
    for (let pos = 0; pos < T; pos++) {
      const lo = Math.max(0, pos - 3);
      for (let hq = 0; hq < cfg.numHeads; hq++) {
        const gk = Math.floor(hq / 2);
        for (let c = 0; c < cfg.headDim; c++) {
          let mean = 0;
          for (let j = lo; j <= pos; j++) mean += t.v[j][gk][c] / (pos - lo + 1);
          expect(t.attn[pos][hq][c]).toBeCloseTo(mean, 7);
        }
      }
    }
  });

  it('the final soft-cap is cap·tanh(logits/cap) of the uncapped logits', () => {
    const cfg = gemmaLike(2);
    const p = standardPlan(2);
    const w = weightsFor(cfg, p, 10);
    const tokens = tokensOf(5, cfg.vocabSize);
    const capped = referenceForward(cfg, p, w, tokens);
    const raw = referenceForward({ ...cfg, finalSoftcap: 0 }, p, w, tokens);
    raw.forEach((row, i) => row.forEach((z, j) => expect(capped[i][j]).toBeCloseTo(3 * Math.tanh(z / 3), 12)));
    expect(raw.some((row) => row.some((z) => Math.abs(z) > 3))).toBe(true);
  });

  it('random weights keep a wider, deeper model well-scaled (logits finite, std within [0.3, 3])', () => {
    const cfg = llamaLike(4, { hiddenSize: 128, intermediateSize: 256, numHeads: 8, numKvHeads: 2, headDim: 16, vocabSize: 97 });
    const p = plan(g(0), sw(4, 1), sw(4, 1), g(0));
    const logits = referenceForward(cfg, p, weightsFor(cfg, p, 11), tokensOf(12, cfg.vocabSize));
    const all = logits.flatMap((l) => Array.from(l));
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length);
    expect(all.every(Number.isFinite)).toBe(true);
    expect(std).toBeGreaterThan(0.3);
    expect(std).toBeLessThan(3);
  });
});
