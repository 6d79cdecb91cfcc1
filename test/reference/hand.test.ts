/**
 * The reference against results computed here by hand from the model's own weights, with code
 * that shares nothing with the reference: (a) a single token, where attention is trivially its
 * own value vector; (a') two tokens with one 2-wide head, where RoPE is one plane rotation.
 */
import { describe, expect, it } from 'vitest';
import { llamaConfig, type ModelConfig } from '../../lib/model/config.js';
import { referenceForward } from './transformer64.js';
import { gemmaLike, llamaLike, plan, g, sw, standardPlan, weightsFor } from './helpers.js';

type W = Map<string, Float32Array | Float64Array>;
const mv = (w: ArrayLike<number>, x: number[], out: number): number[] =>
  Array.from({ length: out }, (_, o) => x.reduce((s, xi, i) => s + xi * w[o * x.length + i], 0));
const rms = (x: number[], w: ArrayLike<number>, eps: number): number[] => {
  const r = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
  return x.map((v, i) => (v / r) * w[i]);
};
const add = (a: number[], b: ArrayLike<number> | undefined): number[] => (b ? a.map((v, i) => v + b[i]) : a);
const row = (w: ArrayLike<number>, r: number, n: number): number[] => Array.from({ length: n }, (_, c) => w[r * n + c]);

/** The residual stream after the MLP half of layer 0, given x after attention. */
function mlpAndHead(cfg: ModelConfig, w: W, x: number[]): number[] {
  const eps = cfg.rmsNormEps;
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const hm = rms(x, w.get('layers.0.mlp_norm')!, eps);
  const gate = mv(w.get('layers.0.gate_proj')!, hm, I);
  const up = mv(w.get('layers.0.up_proj')!, hm, I);
  const act = (z: number) =>
    cfg.activation === 'silu' ? z / (1 + Math.exp(-z)) : 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)));
  let m = mv(w.get('layers.0.down_proj')!, gate.map((z, c) => act(z) * up[c]), H);
  if (cfg.sandwichNorm) m = rms(m, w.get('layers.0.post_mlp_norm')!, eps);
  const xf = x.map((v, c) => v + m[c]);
  const head = w.get(cfg.tieWordEmbeddings ? 'embed' : 'lm_head')!;
  const logits = mv(head, rms(xf, w.get('final_norm')!, eps), cfg.vocabSize);
  return cfg.finalSoftcap > 0 ? logits.map((z) => cfg.finalSoftcap * Math.tanh(z / cfg.finalSoftcap)) : logits;
}

function singleTokenByHand(cfg: ModelConfig, w: W, token: number): number[] {
  const H = cfg.hiddenSize;
  const D = cfg.headDim;
  const eps = cfg.rmsNormEps;
  const x = row(w.get('embed')!, token, H).map((v) => v * cfg.embeddingScale);
  const h = rms(x, w.get('layers.0.attn_norm')!, eps);
  const v = add(mv(w.get('layers.0.v_proj')!, h, cfg.numKvHeads * D), cfg.qkvBias ? w.get('layers.0.v_bias') : undefined);
  // one position: softmax = 1, so each query head outputs its KV head's v
  const a: number[] = [];
  for (let hq = 0; hq < cfg.numHeads; hq++) {
    const kv = Math.floor((hq * cfg.numKvHeads) / cfg.numHeads);
    a.push(...v.slice(kv * D, (kv + 1) * D));
  }
  let o = mv(w.get('layers.0.o_proj')!, a, H);
  if (cfg.sandwichNorm) o = rms(o, w.get('layers.0.post_attn_norm')!, eps);
  return mlpAndHead(cfg, w, x.map((xv, c) => xv + o[c]));
}

const closeTo = (got: ArrayLike<number>, want: number[], tol = 1e-12) => {
  const scale = Math.max(...want.map(Math.abs));
  want.forEach((x, i) => expect(Math.abs(got[i] - x)).toBeLessThanOrEqual(tol * scale));
};

describe('reference vs hand computation', () => {
  it.each([
    ['llama-like', llamaLike(1), standardPlan(1)],
    ['gemma-like', gemmaLike(1), standardPlan(1)],
    ['gemma-like, sliding plan', gemmaLike(1), plan(sw(2, 0))],
  ])('(a) single token, %s', (_, cfg, p) => {
    const w = weightsFor(cfg, p, 4);
    for (const token of [0, 7, cfg.vocabSize - 1]) {
      const [logits] = referenceForward(cfg, p, w, [token]);
      expect(logits.length).toBe(cfg.vocabSize);
      closeTo(logits, singleTokenByHand(cfg, w, token));
    }
  });

  it.each([
    ['default RoPE (angle 1 rad)', {}, 1],
    ['linear scaling ×2 with qk-norm and biases (angle 0.5 rad)', { ropeScaling: { type: 'linear', factor: 2 }, qkNorm: true, qkvBias: true } as const, 0.5],
  ])("(a') two tokens, one 2-wide head, %s", (_, extra, angle) => {
    const cfg = llamaConfig({ vocabSize: 7, hiddenSize: 4, intermediateSize: 6, numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 2, attnScale: 0.8, ...extra });
    const p = plan(g(0));
    const w = weightsFor(cfg, p, 8);
    const tokens = [3, 5];
    const eps = cfg.rmsNormEps;
    const bias = (n: string) => (cfg.qkvBias ? w.get(`layers.0.${n}_bias`) : undefined);
    const headNorm = (x: number[], n: string) => (cfg.qkNorm ? rms(x, w.get(`layers.0.${n}_norm`)!, eps) : x);
    const rot = (x: number[], a: number) => [x[0] * Math.cos(a) - x[1] * Math.sin(a), x[1] * Math.cos(a) + x[0] * Math.sin(a)];
    const xs = tokens.map((t) => row(w.get('embed')!, t, 4));
    const hs = xs.map((x) => rms(x, w.get('layers.0.attn_norm')!, eps));
    const k = hs.map((h, pos) => rot(headNorm(add(mv(w.get('layers.0.k_proj')!, h, 2), bias('k')), 'k'), pos * angle));
    const v = hs.map((h) => add(mv(w.get('layers.0.v_proj')!, h, 2), bias('v')));
    const q1 = rot(headNorm(add(mv(w.get('layers.0.q_proj')!, hs[1], 2), bias('q')), 'q'), angle);
    const s = k.map((kj) => (q1[0] * kj[0] + q1[1] * kj[1]) * cfg.attnScale);
    const e = s.map((x) => Math.exp(x));
    const a1 = [0, 1].map((c) => (e[0] * v[0][c] + e[1] * v[1][c]) / (e[0] + e[1]));
    const a0 = v[0];
    const want = [a0, a1].map((a, pos) => {
      const o = mv(w.get('layers.0.o_proj')!, a, 4);
      return mlpAndHead(cfg, w, xs[pos].map((xv, c) => xv + o[c]));
    });
    const got = referenceForward(cfg, p, w, tokens);
    closeTo(got[0], want[0]);
    closeTo(got[1], want[1]);
  });
});
