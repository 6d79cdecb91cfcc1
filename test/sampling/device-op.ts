/**
 * Backend::sample through the addon's runOp, for the twin tests: rows of logits and their
 * DeviceSampling specs in, per row the Reduced result (as a Sampler accepts it) and the
 * penalised logits out (of the given step, also when `repeat` times more steps after it). Also
 * the random rows and policies those tests draw, and the host-vs-device comparison.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { loadAddon } from '../../lib/native.js';
import { packSampling, type DeviceSampling, type Reduced, type SampleResult } from '../../lib/sampling/index.js';

export type OpBackend = 'cpu' | 'cuda';

interface OpsAddon {
  runOp(backend: OpBackend, op: string, args: Record<string, unknown>): Record<string, Float32Array | number>;
}

export interface DeviceSampled {
  readonly results: Reduced[];
  /** The logits after the penalties, [rows × vocab]. */
  readonly penalised: Float32Array;
  /** Seconds per run when args.repeat was given. */
  readonly seconds?: number;
}

export function deviceSample(backend: OpBackend, logits: Float32Array, vocab: number, specs: readonly DeviceSampling[], repeat = 0): DeviceSampled {
  const addon = loadAddon() as unknown as OpsAddon;
  const out = addon.runOp(backend, 'sample', { logits, rows: specs.length, vocab, ...packSampling(specs), ...(repeat > 0 ? { repeat } : {}) });
  const ids = out.ids as Float32Array;
  const lps = out.logprobs as Float32Array;
  const topIds = out.topIds as Float32Array;
  const topLps = out.topLogprobs as Float32Array;
  const K = specs.reduce((a, s) => Math.max(a, s.topLogprobs), 0);
  const results = specs.map((s, r) => ({
    token: ids[r],
    logprob: lps[r],
    topLogprobs: Array.from({ length: K }, (_, j) => ({ token: topIds[r * K + j], logprob: topLps[r * K + j] })).filter((x) => x.token >= 0),
  }));
  return { results, penalised: out.penalised as Float32Array, ...(typeof out.seconds === 'number' ? { seconds: out.seconds } : {}) };
}

/** |a - b| <= 1e-5, relative beyond magnitude 1 (the device reports fp32); -inf and NaN exact. */
export function closeLogprob(a: number | undefined, b: number | undefined, what: string): void {
  if (a === undefined || b === undefined || !Number.isFinite(b)) {
    expect(a, what).toBe(b);
    return;
  }
  expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
}

/** The device's result (accepted by a Sampler) equals the host Sampler's: token, logprob, top logprobs. */
export function expectSame(dev: SampleResult, host: SampleResult, what: string): void {
  expect(dev.token, `${what}: token`).toBe(host.token);
  closeLogprob(dev.logprob, host.logprob, `${what}: logprob`);
  expect(dev.topLogprobs?.map((x) => x.token), `${what}: top ids`).toEqual(host.topLogprobs?.map((x) => x.token));
  dev.topLogprobs?.forEach((x, j) => closeLogprob(x.logprob, host.topLogprobs![j].logprob, `${what}: top logprob ${j}`));
}

/** The sampling parameters a test draws (a SamplingParams subset with every knob). */
export interface PolicyDraw {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logprobs: boolean;
  topLogprobs: number;
  seed: number;
}

/** Policies over every combination of knobs, the off values included. */
export function policyArb(vocab: number): fc.Arbitrary<PolicyDraw> {
  return fc.record({
    temperature: fc.oneof(fc.constantFrom(0, 1, 0.7, 1.5), fc.double({ min: 0.05, max: 4, noNaN: true })),
    topK: fc.oneof(fc.constantFrom(0, 1, 2, 40, vocab - 1, vocab, vocab + 3), fc.integer({ min: 0, max: vocab + 5 })),
    topP: fc.oneof(fc.constantFrom(1, 0.9, 0.5, 0.05), fc.double({ min: 0.01, max: 1, noNaN: true })),
    minP: fc.oneof(fc.constantFrom(0, 0.05, 0.3, 1), fc.double({ min: 0, max: 1, noNaN: true })),
    repetitionPenalty: fc.constantFrom(1, 1.3, 0.8),
    presencePenalty: fc.constantFrom(0, 0.5, -0.7),
    frequencyPenalty: fc.constantFrom(0, 0.3, -1.1),
    logprobs: fc.boolean(),
    topLogprobs: fc.integer({ min: 0, max: 20 }),
    seed: fc.nat(),
  });
}

/**
 * Rows of logits that stress the rule: normals at a scale (never all zeros), optionally on a
 * coarse grid (many ties), with some -inf entries, and rarely a NaN.
 */
export function logitsArb(vocab: number, rows: number): fc.Arbitrary<Float32Array> {
  return fc
    .record({
      seed: fc.nat(),
      scale: fc.constantFrom(0.5, 2, 6, 20),
      grid: fc.constantFrom(0, 0, 0.25, 1),
      masked: fc.constantFrom(0, 0, 0.1, 0.6),
      nan: fc.constantFrom(false, false, false, true),
    })
    .map(({ seed, scale, grid, masked, nan }) => randomLogits(seed, vocab * rows, { scale, grid, masked, nan }));
}

export function randomLogits(seed: number, n: number, o: { scale: number; grid?: number; masked?: number; nan?: boolean }): Float32Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    let x = o.scale * z + 0.1;
    if (o.grid) x = Math.round(x / o.grid) * o.grid;
    if (o.masked && next() < o.masked) x = -Infinity;
    out[i] = x === 0 ? 0.03125 : x;
  }
  if (o.nan && n > 2) out[Math.floor(next() * n)] = NaN;
  return out;
}
