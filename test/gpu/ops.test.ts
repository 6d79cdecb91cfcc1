/**
 * Each CUDA row-wise, elementwise and GEMM op against its CPU twin (test/gpu/twin.ts says how:
 * fresh bf16-exact random inputs, poisoned outputs, ‖cuda − cpu‖/‖cpu‖ within 2× PyTorch's
 * own bf16 error). Copies (gatherRows, appendKv) must be exact.
 */
import { describe, expect, it } from 'vitest';
import { Rng, SEED, TWIN, bound, cudaAvailable, expectWithin, randn, relErr, runOp, twin, weight } from './twin.js';

const WTYPES = ['f32', 'bf16'] as const;

describe.skipIf(!cudaAvailable)(`CUDA ops vs CPU twins (${TWIN}, seed ${SEED})`, () => {
  const rng = new Rng(SEED);

  it('embedding: f32 and bf16 tables, with a scale', () => {
    for (const t of WTYPES) {
      const vocab = 300, dim = 96;
      const table = randn(rng, vocab * dim);
      const tokens = Int32Array.from({ length: 37 }, () => rng.int(vocab));
      const args = { tokens, table: weight(table, t), tableType: t, vocab, dim, scale: Math.sqrt(dim) };
      const [gpu, cpu] = twin('embedding', args);
      expectWithin(`embedding ${t}`, relErr(gpu.out, cpu.out), bound('embedding'));
    }
  });

  for (const t of WTYPES) {
    it(`rmsnorm and addRmsnorm, ${t} weights, wide and odd rows`, () => {
      // dim >= 512, a multiple of 8 and <= 16384 takes the block-per-row kernel; the rest one warp per row.
      for (const [rows, dim] of [[64, 1024], [13, 30], [5, 4096], [1, 2048], [2, 520], [3, 16384], [1, 16392], [4, 500]]) {
        const w = weight(randn(rng, dim, 0.1, 1), t);
        const x = randn(rng, rows * dim);
        const [g1, c1] = twin('rmsnorm', { x, w, wType: t, rows, dim, eps: 1e-5 });
        expectWithin(`rmsnorm ${t} ${rows}x${dim}`, relErr(g1.out, c1.out), bound('rmsnorm'));
        const residual = randn(rng, rows * dim);
        const delta = randn(rng, rows * dim);
        const [g2, c2] = twin('addRmsnorm', { residual, delta, w, wType: t, rows, dim, eps: 1e-6 });
        expectWithin(`residual ${rows}x${dim}`, relErr(g2.residual, c2.residual), bound('add'));
        expectWithin(`addRmsnorm ${t} ${rows}x${dim}`, relErr(g2.out, c2.out), bound('addRmsnorm'));
      }
    });

    it(`matmul, ${t} weights, with and without bias, decode and prefill shapes`, () => {
      // M <= 8 with K % 8 == 0 takes the skinny GEMM (gemv.cu) for bf16 weights; the rest cuBLASLt.
      for (const [M, N, K] of [[1, 512, 256], [7, 96, 40], [3, 1000, 2048], [8, 515, 1032], [5, 64, 36], [64, 384, 512], [200, 30, 24]]) {
        const x = randn(rng, M * K);
        const w = randn(rng, N * K, 1 / Math.sqrt(K));
        const bias = randn(rng, N, 0.1);
        for (const b of [null, weight(bias, t)]) {
          const [gpu, cpu] = twin('matmul', { x, w: weight(w, t), wType: t, bias: b, M, N, K });
          expectWithin(`matmul ${t} ${M}x${N}x${K} bias=${b !== null}`, relErr(gpu.out, cpu.out), bound('matmul'));
        }
      }
    });

    it(`logits (fp32 out), ${t} head, with and without a soft-cap`, () => {
      for (const [M, V, K] of [[1, 1000, 256], [8, 4099, 512], [9, 301, 64]]) {
        const x = randn(rng, M * K);
        const w = weight(randn(rng, V * K, 1 / Math.sqrt(K)), t);
        for (const softcap of [0, 3]) {
          const [gpu, cpu] = twin('logits', { x, w, wType: t, M, N: V, K, softcap });
          expectWithin(`logits ${t} ${M}x${V}x${K} cap ${softcap}`, relErr(gpu.out, cpu.out), bound('logits'));
        }
      }
    });
  }

  it('add', () => {
    const n = 100_003;
    const [gpu, cpu] = twin('add', { inout: randn(rng, n), in: randn(rng, n) });
    expectWithin('add', relErr(gpu.out, cpu.out), bound('add'));
  });

  it('argmax: exact ids, ties to the lowest index, NaN and -inf never chosen, odd vocab sizes', () => {
    for (const [rows, vocab] of [[1, 128256], [7, 50257], [64, 32000], [3, 5], [2, 1]]) {
      const logits = randn(rng, rows * vocab, 3);
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * vocab, (r + 1) * vocab);
        if (r % 3 === 1 && vocab > 2) {
          // a tie for the maximum at two places, and NaN / -inf around
          const max = Math.max(...row.subarray(0, Math.min(vocab, 4096))) + 1;
          const a = rng.int(vocab), b = rng.int(vocab);
          row[a] = max;
          row[b] = max;
          row[(a + 1) % vocab] = NaN;
          row[(b + 2) % vocab] = -Infinity;
        }
      }
      if (rows === 3) logits.subarray(2 * vocab, 3 * vocab).fill(-Infinity);  // nothing beats -inf: 0
      const [gpu, cpu] = twin('argmax', { logits, rows, vocab });
      expect(Array.from(gpu.out), `argmax ${rows} x ${vocab}`).toEqual(Array.from(cpu.out));
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * vocab, (r + 1) * vocab);
        let best = -Infinity, at = 0;
        for (let i = 0; i < vocab; i++) if (row[i] > best) [best, at] = [row[i], i];
        expect(cpu.out[r]).toBe(at);
      }
    }
  });

  it('gatherRows is an exact copy', () => {
    const rows = 50, dim = 72;
    const x = randn(rng, rows * dim);
    const index = Int32Array.from({ length: 17 }, () => rng.int(rows));
    const [gpu, cpu] = twin('gatherRows', { x, index, dim });
    expect(relErr(gpu.out, cpu.out)).toBe(0);
  });

  for (const t of WTYPES) {
    it(`matmulShared (q, k, v from one input), ${t} weights, decode and prefill shapes`, () => {
      for (const [M, K] of [[1, 256], [6, 520], [8, 64], [33, 128]]) {
        const x = randn(rng, M * K);
        const ws = [300, 64, 72].map((N, j) => ({
          N,
          w: weight(randn(rng, N * K, 1 / Math.sqrt(K)), t),
          bias: j === 1 ? null : weight(randn(rng, N, 0.1), t),
        }));
        const [gpu, cpu] = twin('matmulShared', { x, M, K, wType: t, ws });
        // matmulShared returns one output per job (`outs`), not a single array.
        const [gpuOuts, cpuOuts] = [gpu, cpu].map((r) => r.outs as unknown as Float32Array[]);
        for (let j = 0; j < ws.length; j++)
          expectWithin(`matmulShared ${t} M=${M} K=${K} job ${j}`, relErr(gpuOuts[j], cpuOuts[j]), bound('matmul'));
      }
    });

    it(`gatedMatmul (gate, up and activation), ${t} weights, decode and prefill shapes`, () => {
      for (const [M, I, K] of [[1, 700, 256], [8, 96, 1032], [5, 64, 36], [40, 128, 64]]) {
        const x = randn(rng, M * K);
        const wGate = weight(randn(rng, I * K, 2 / Math.sqrt(K)), t);
        const wUp = weight(randn(rng, I * K, 1 / Math.sqrt(K)), t);
        for (const act of ['silu', 'gelu_tanh']) {
          const [gpu, cpu] = twin('gatedMatmul', { x, wGate, wUp, wType: t, M, I, K, act });
          // Two GEMMs and the activation: their bounds add (the fused kernel rounds once, less).
          const b = bound('matmul') + bound(act === 'silu' ? 'gated_silu' : 'gated_gelu');
          expectWithin(`gatedMatmul ${t} ${M}x${I}x${K} ${act}`, relErr(gpu.out, cpu.out), b);
        }
      }
    });
  }

  it('gatedActivation: SwiGLU and GeGLU', () => {
    const T = 33, I = 1000;
    const gate = randn(rng, T * I, 2);
    const up = randn(rng, T * I);
    for (const act of ['silu', 'gelu_tanh']) {
      const [gpu, cpu] = twin('gatedActivation', { gate, up, T, I, act });
      expectWithin(`gated ${act}`, relErr(gpu.out, cpu.out), bound(act === 'silu' ? 'gated_silu' : 'gated_gelu'));
    }
  });

  it('rope: default, linear and llama3 scaling, positions up to 1e5', () => {
    const scalings = [
      { theta: 10000, scaling: 'default' },
      { theta: 1e6, scaling: 'linear', factor: 8 },
      { theta: 500000, scaling: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 },
    ];
    for (const [heads, headDim] of [[8, 128], [3, 6], [2, 64]]) {
      const T = 40;
      const positions = Int32Array.from({ length: T }, (_, i) => (i < 20 ? i : rng.int(100_000)));
      const x = randn(rng, T * heads * headDim);
      for (const rope of scalings) {
        const [gpu, cpu] = twin('rope', { x, positions, heads, headDim, rope });
        expectWithin(`rope ${rope.scaling} ${heads}x${headDim}`, relErr(gpu.out, cpu.out), bound('rope'));
      }
    }
  });

  it('appendKv writes exactly the rows of each position into its page (bf16 and f32 pages)', () => {
    for (const dtype of ['bf16', 'f32'] as const) {
      const blockSize = 4, numKvHeads = 2, kDim = 8, vDim = 6, numPages = 12, pagesPerBlock = 2, slot = 1;
      const numNew = Int32Array.from([5, 1, 3]);
      const pastLen = Int32Array.from([0, 6, 2]);
      const tableStride = 4 * pagesPerBlock;
      const perm = Array.from({ length: numPages }, (_, i) => i).sort(() => rng.next() - 0.5);
      const tables = Int32Array.from({ length: 3 * tableStride }, (_, i) => perm[i % numPages]);
      const pageElems = blockSize * numKvHeads * (kDim + vDim);
      const T = 9;
      const kv = { dtype, numPages, blockSize, numKvHeads, kDim, vDim, pagesPerBlock, slot, tableStride, tables, arena: randn(rng, numPages * pageElems) };
      const args = { kv, numNew, pastLen, k: randn(rng, T * numKvHeads * kDim), v: randn(rng, T * numKvHeads * vDim) };
      const [gpu, cpu] = twin('appendKv', args);
      expect(relErr(gpu.arena, cpu.arena), dtype).toBe(0);
    }
  });

  it('ropeAppendKv (RoPE fused into the append) writes the pages rope + appendKv write', () => {
    for (const dtype of ['bf16', 'f32'] as const) {
      const blockSize = 16, numKvHeads = 2, kDim = 64, vDim = 64, numPages = 8, pagesPerBlock = 1, slot = 0;
      const numNew = Int32Array.from([20, 1, 7]);
      const pastLen = Int32Array.from([0, 40, 300]);
      const tableStride = 20;
      const tables = Int32Array.from({ length: 3 * tableStride }, (_, i) => i % numPages);
      const T = 28;
      const kv = { dtype, numPages, blockSize, numKvHeads, kDim, vDim, pagesPerBlock, slot, tableStride, tables, arena: randn(rng, numPages * blockSize * numKvHeads * (kDim + vDim)) };
      for (const rope of [{ theta: 10000, scaling: 'default' }, { theta: 500000, scaling: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 }]) {
        const args = { kv, numNew, pastLen, rope, k: randn(rng, T * numKvHeads * kDim), v: randn(rng, T * numKvHeads * vDim) };
        const [gpu, cpu] = twin('ropeAppendKv', args);
        expectWithin(`ropeAppendKv ${dtype} ${rope.scaling}`, relErr(gpu.arena, cpu.arena), bound('rope'));
      }
    }
  });

  it('ropeQAppendKv rotates q in the append launch: the pages of ropeAppendKv and the q of rope, bit for bit', () => {
    for (const dtype of ['bf16', 'f32'] as const) {
      const blockSize = 16, numKvHeads = 2, numHeads = 8, kDim = 128, vDim = 64, numPages = 8, pagesPerBlock = 1, slot = 0;
      const numNew = Int32Array.from([20, 1, 7]);
      const pastLen = Int32Array.from([0, 4000, 300]);
      const tableStride = 300;
      const tables = Int32Array.from({ length: 3 * tableStride }, (_, i) => (i * 5) % numPages);
      const T = 28;
      const positions = Int32Array.from([...Array.from({ length: 20 }, (_, i) => i), 4000, ...Array.from({ length: 7 }, (_, i) => 300 + i)]);
      const kv = { dtype, numPages, blockSize, numKvHeads, kDim, vDim, pagesPerBlock, slot, tableStride, tables, arena: randn(rng, numPages * blockSize * numKvHeads * (kDim + vDim)) };
      const rope = { theta: 500000, scaling: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 64 };
      const args = { kv, numNew, pastLen, rope, numHeads, q: randn(rng, T * numHeads * kDim), k: randn(rng, T * numKvHeads * kDim), v: randn(rng, T * numKvHeads * vDim) };
      const [gpu, cpu] = twin('ropeQAppendKv', args);
      expectWithin(`ropeQAppendKv ${dtype} q`, relErr(gpu.q, cpu.q), bound('rope'));
      expectWithin(`ropeQAppendKv ${dtype} pages`, relErr(gpu.arena, cpu.arena), bound('rope'));
      // The same backend's separate ops: identical bits.
      const pages = runOp(TWIN, 'ropeAppendKv', args).arena;
      const q = runOp(TWIN, 'rope', { x: args.q, positions, heads: numHeads, headDim: kDim, rope }).out;
      const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
      expect(Buffer.compare(bits(gpu.arena), bits(pages)), `${dtype} pages`).toBe(0);
      expect(Buffer.compare(bits(gpu.q), bits(q)), `${dtype} q`).toBe(0);
    }
  });
});

describe.skipIf(!cudaAvailable || TWIN === 'cpu')('CUDA errors in device data', () => {
  it('a token outside the vocabulary names it; the backend stays usable', () => {
    const table = randn(new Rng(SEED), 10 * 4);
    const args = { tokens: Int32Array.from([1, 2, 10]), table, tableType: 'f32', vocab: 10, dim: 4, scale: 1 };
    expect(() => runOp('cuda', 'embedding', args)).toThrow(/embedding: token id 10 at index 2 is outside \[0, 10\)/);
    const ok = runOp('cuda', 'embedding', { ...args, tokens: Int32Array.from([3]) });
    expect(Array.from(ok.out)).toEqual(Array.from(table.subarray(12, 16)));
  });

  it('a missing or out-of-range page id is an error, not a crash', () => {
    const kv = (tables: number[]) => ({
      dtype: 'bf16', numPages: 4, blockSize: 4, numKvHeads: 1, kDim: 64, vDim: 64, pagesPerBlock: 1, slot: 0,
      tableStride: 2, tables: Int32Array.from(tables), arena: randn(new Rng(SEED), 4 * 4 * 128),
    });
    const base = { numNew: Int32Array.from([2]), pastLen: Int32Array.from([4]), numHeads: 2, window: 0, scale: 0.125, softcap: 0 };
    const q = randn(new Rng(SEED), 2 * 2 * 64);
    for (const path of ['generic', 'decode', 'prefill']) {
      expect(() => runOp('cuda', 'attention', { ...base, q, kv: kv([-1, 1]), path })).toThrow(/attention: sequence 0 position 0: page id -1 is missing/);
      expect(() => runOp('cuda', 'attention', { ...base, q, kv: kv([0, 9]), path })).toThrow(/page id 9 is out of range \(numPages 4\)/);
      // The kernels mask before they scale: a scale <= 0 would turn masked keys into NaN.
      expect(() => runOp('cuda', 'attention', { ...base, q, kv: kv([0, 1]), path, scale: 0 })).toThrow(/attention: scale must be positive and finite \(got 0/);
      expect(() => runOp('cuda', 'attention', { ...base, q, kv: kv([0, 1]), path, softcap: -1 })).toThrow(/attention: softcap must be finite and >= 0/);
      const good = runOp('cuda', 'attention', { ...base, q, kv: kv([0, 1]), path });
      expect(good.out.every(Number.isFinite)).toBe(true);
    }
    const k = randn(new Rng(SEED), 2 * 64);
    expect(() => runOp('cuda', 'appendKv', { kv: kv([0, -1]), numNew: base.numNew, pastLen: base.pastLen, k, v: k })).toThrow(/appendKv: sequence 0 position [45]: page id -1 is missing/);
  });
});
