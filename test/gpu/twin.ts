/**
 * Helpers of the CUDA twin tests: the addon's runOp, fresh random inputs, relative errors and
 * the bf16 error bounds measured with PyTorch on the GPU machine.
 *
 * Every check compares a CUDA op with its CPU twin (fp32 math, the reference) on the same
 * inputs: inputs are drawn at random for every run (never zeros) and rounded to bf16 first, so
 * both backends see identical values whatever their activation dtype. The CUDA output is
 * poisoned before the op (runOp fills it with NaN bytes): an unwritten element fails.
 *
 * Bounds (FlashAttention's rule): ‖cuda − cpu‖ / ‖cpu‖ ≤ 2 × PyTorch's own bf16 error against
 * fp32 on inputs of the same shapes and distributions, measured on the GPU by
 * test/gpu/torch_bf16_bounds.py into test/gpu/bf16-bounds.json (device and date inside).
 *
 * MIXATTN_TWIN=cpu runs the same tests with the CPU backend on both sides (checks the harness
 * on a machine without a GPU); MIXATTN_SEED replays a failing draw (the seed is in the titles).
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { loadAddon } from '../../lib/native.js';
import { f32ToBf16 } from '../../lib/model/bf16.js';

export type BackendName = 'cpu' | 'cuda';
export const TWIN: BackendName = process.env.MIXATTN_TWIN === 'cpu' ? 'cpu' : 'cuda';

interface OpsAddon {
  runOp(backend: BackendName, op: string, args: Record<string, unknown>): Record<string, Float32Array>;
  backendInfo(): { cuda: { available: boolean; deviceName: string; reason: string } };
}
const addon = loadAddon() as unknown as OpsAddon;

export const cudaInfo = addon.backendInfo().cuda;
export const cudaAvailable = TWIN === 'cpu' || cudaInfo.available;

export function runOp(backend: BackendName, op: string, args: Record<string, unknown>): Record<string, Float32Array> {
  return addon.runOp(backend, op, args);
}

/** Runs `op` on the twin under test and on the CPU; returns [twin, cpu] outputs. */
export function twin(op: string, args: Record<string, unknown>, twinArgs: Record<string, unknown> = {}) {
  return [runOp(TWIN, op, { ...args, ...twinArgs }), runOp('cpu', op, args)] as const;
}

export const SEED = Number(process.env.MIXATTN_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32 with Box–Muller normals. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Values rounded to bf16 (in place), so f32 and bf16 backends read the same numbers. */
export function roundBf16(a: Float32Array): Float32Array {
  const bits = f32ToBf16(a);
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < a.length; i++) u[i] = bits[i] << 16;
  return a;
}

/** n normals × std (+ mean), rounded to bf16. Never all zeros. */
export function randn(rng: Rng, n: number, std = 1, mean = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = mean + std * rng.normal();
  return roundBf16(a);
}

/** A weight in a dtype: the Float32Array / Uint16Array runOp takes, from bf16-exact values. */
/**
 * Block tables for a paged-KV op: pages for every block a row can reach, shuffled; blocks a
 * window has left hold -1. This owner's page is the last of each block (slot ppb - 1).
 */
export function randomBlockTables(
  c: { numNew: readonly number[]; pastLen: readonly number[]; blockSize?: number; pagesPerBlock?: number; window?: number },
  rng: Rng,
) {
  const bs = c.blockSize ?? 16, ppb = c.pagesPerBlock ?? 1, window = c.window ?? 0;
  const blocks = c.numNew.map((n, s) => Math.ceil((c.pastLen[s] + n) / bs));
  const firstBlock = c.pastLen.map((p) => Math.floor((window > 0 ? Math.max(0, p - window + 1) : 0) / bs));
  const tableStride = Math.max(...blocks) * ppb;
  const numPages = blocks.reduce((a, b, s) => a + b - firstBlock[s], 0) * ppb + 3;
  const free = Array.from({ length: numPages }, (_, i) => i);
  for (let i = free.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [free[i], free[j]] = [free[j], free[i]];
  }
  const tables = new Int32Array(c.numNew.length * tableStride).fill(-1);
  c.numNew.forEach((_, s) => {
    for (let b = firstBlock[s]; b < blocks[s]; b++)
      for (let k = 0; k < ppb; k++) tables[s * tableStride + b * ppb + k] = free.pop()!;
  });
  return { blockSize: bs, pagesPerBlock: ppb, slot: ppb - 1, tableStride, numPages, tables };
}

export function weight(values: Float32Array, dtype: 'f32' | 'bf16'): Float32Array | Uint16Array {
  return dtype === 'f32' ? values : f32ToBf16(values);
}

/** ‖out − ref‖₂ / ‖ref‖₂ in float64; Infinity when out holds a NaN (an unwritten element). */
export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) throw new Error(`length ${out.length} != ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(out[i])) return Infinity;
    num += (out[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}

interface Bounds {
  device: string;
  date: string;
  torch: string;
  entries: Record<string, number>;
}
const BOUNDS_FILE = fileURLToPath(new URL('./bf16-bounds.json', import.meta.url));
const bounds: Bounds | undefined = existsSync(BOUNDS_FILE) ? (JSON.parse(readFileSync(BOUNDS_FILE, 'utf8')) as Bounds) : undefined;

/**
 * The tolerance for a check of kind `key`: 2 × PyTorch's bf16 error there. With the CPU on
 * both sides (MIXATTN_TWIN=cpu) the outputs must agree to fp32 rounding instead (whole
 * models: to the bf16 rounding of the KV pages, the one difference left).
 */
export function bound(key: string): number {
  if (TWIN === 'cpu') return key === 'model' ? 1e-2 : 1e-5;  // model: bf16 vs f32 KV pages
  const e = bounds?.entries[key];
  if (e === undefined) throw new Error(`no PyTorch bf16 error for '${key}' in ${BOUNDS_FILE}; run test/gpu/torch_bf16_bounds.py on the GPU machine`);
  return 2 * e;
}

/** MIXATTN_TWIN_REPORT=<file>: appends {check, err, bound} per check (JSON lines). */
export function report(check: string, err: number, tol: number): void {
  const file = process.env.MIXATTN_TWIN_REPORT;
  if (file) appendFileSync(file, JSON.stringify({ check, err, bound: tol }) + '\n');
}

/** expect(err).toBeLessThanOrEqual(tol), reported first. */
export function expectWithin(check: string, err: number, tol: number): void {
  report(check, err, tol);
  expect(err, `${check}: rel err ${err} > ${tol}`).toBeLessThanOrEqual(tol);
}
