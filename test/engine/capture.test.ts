/**
 * Engine.stepCapture: each layer's attention input (the normalised hidden state feeding
 * q/k/v) for every token of a step, checked against the float64 reference: projected and
 * rotated, the captured rows must give the reference's queries (every layer) and keys (owners),
 * at their positions, in a ragged prefill + decode batch under a plan with readers and windows.
 */
import { describe, expect, it } from 'vitest';
import { linear, referenceForward, rope, ropeInvFreq, type LayerTrace } from '../reference/transformer64.js';
import { g, llamaLike, plan, sw, tokensOf, weightsFor } from '../reference/helpers.js';
import { makeEngine } from './harness.js';

const cfg = llamaLike(4, { qkvBias: true });
const p = plan(g(0), sw(4, 1), sw(3, 1), g(0));
const weights = weightsFor(cfg, p);

/** max |a − b| / max |b| over a list of vectors. */
function rel(a: Float64Array[], b: readonly Float64Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((v, i) => v.forEach((x, j) => {
    num = Math.max(num, Math.abs(x - b[i][j]));
    den = Math.max(den, Math.abs(b[i][j]));
  }));
  return num / den;
}

/** Queries and (for owners) keys of one row of captured h, as the reference computes them. */
function projectRow(layer: number, h: Float32Array, pos: number) {
  const { numHeads: nH, numKvHeads: nKv, headDim: D } = cfg;
  const w = (n: string) => weights.get(`layers.${layer}.${n}`)!;
  const inv = ropeInvFreq(cfg, layer);
  const heads = (x: Float64Array, n: number) => Array.from({ length: n }, (_, i) => rope(x.subarray(i * D, (i + 1) * D), pos, inv));
  const q = heads(linear(h, w('q_proj'), nH * D, w('q_bias')), nH);
  const k = p.layers[layer].kvSource === layer ? heads(linear(h, w('k_proj'), nKv * D, w('k_bias')), nKv) : [];
  return { q, k };
}

describe('Engine.stepCapture', () => {
  it('returns every layer’s attention input, matching the float64 reference', async () => {
    using engine = makeEngine(cfg, p, { kvPages: 64 });
    const seqs = [tokensOf(7, cfg.vocabSize, 1), tokensOf(5, cfg.vocabSize, 2)];
    const traces = seqs.map((t) => {
      const out: LayerTrace[] = [];
      referenceForward(cfg, p, weights, t, { onLayer: (tr) => out.push(tr) });
      return out;
    });
    const ids = seqs.map(() => engine.addSequence());
    // Step 1: ragged prefill (6 and 4 tokens); step 2: one decode token each.
    const steps = [
      [{ seq: ids[0], tokens: seqs[0].slice(0, 6) }, { seq: ids[1], tokens: seqs[1].slice(0, 4) }],
      [{ seq: ids[0], tokens: seqs[0].slice(6) }, { seq: ids[1], tokens: seqs[1].slice(4) }],
    ];
    const starts = [[0, 0], [6, 4]];
    const H = cfg.hiddenSize;
    for (const [si, entries] of steps.entries()) {
      const rows = entries.reduce((n, e) => n + e.tokens.length, 0);
      const { logits, attentionInputs } = await engine.stepCapture(entries);
      expect(logits).toHaveLength(2);
      expect(attentionInputs).toHaveLength(cfg.numLayers * rows * H);
      for (let layer = 0; layer < cfg.numLayers; layer++) {
        let row = 0;
        entries.forEach((e, s) => {
          for (let t = 0; t < e.tokens.length; t++, row++) {
            const pos = starts[si][s] + t;
            const h = attentionInputs.subarray((layer * rows + row) * H, (layer * rows + row + 1) * H);
            const { q, k } = projectRow(layer, h, pos);
            const tr = traces[s][layer];
            expect(rel(q, tr.q[pos]), `layer ${layer} seq ${s} pos ${pos} q`).toBeLessThan(1e-4);
            if (k.length > 0) expect(rel(k, tr.k[pos]), `layer ${layer} seq ${s} pos ${pos} k`).toBeLessThan(1e-4);
          }
        });
      }
    }
    for (const id of ids) engine.releaseSequence(id);
    expect(engine.blocks.usedPages).toBe(0);
  });

  it('matches step’s logits; argmax output cannot be combined with capture', async () => {
    using engine = makeEngine(cfg, p, { kvPages: 64 });
    const toks = tokensOf(9, cfg.vocabSize, 3);
    const a = engine.addSequence();
    const b = engine.addSequence();
    const [plain] = await engine.step([{ seq: a, tokens: toks, logits: 'all' }]);
    const { logits: [captured] } = await engine.stepCapture([{ seq: b, tokens: toks, logits: 'all' }]);
    expect(Array.from(captured)).toEqual(Array.from(plain));
    const handle = (engine as unknown as { native: { forward(s: object): Promise<unknown> } }).native;
    expect(() => handle.forward({
      tokens: new Int32Array([1]), numNew: new Int32Array([1]), pastLen: new Int32Array([0]),
      tables: [], tableStrides: new Int32Array(0), logitRows: new Int32Array([0]), output: 'argmax', captureAttentionInputs: true,
    })).toThrow(/captureAttentionInputs needs output 'logits'/);
  });
});
