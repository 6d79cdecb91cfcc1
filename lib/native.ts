/**
 * Loads the N-API addon (build/Release/mixattn.node, found by node-gyp-build from the
 * package root) and describes its surface.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type NativeDType = 'f32' | 'bf16';

export interface NativeRope {
  theta: number;
  scaling: 'default' | 'linear' | 'llama3';
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPosition?: number;
}

/** What native/model/model_desc.h needs (built by lib/engine/native-desc.ts). */
export interface NativeModelDesc {
  config: {
    vocabSize: number;
    hiddenSize: number;
    intermediateSize: number;
    numLayers: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    rmsNormEps: number;
    rope: NativeRope;
    ropeLocal: NativeRope;
    activation: 'silu' | 'gelu_tanh';
    tieWordEmbeddings: boolean;
    qkvBias: boolean;
    qkNorm: boolean;
    sandwichNorm: boolean;
    embeddingScale: number;
    attnScale: number;
    attnSoftcap: number;
    finalSoftcap: number;
  };
  /** Per layer; the cache fields (kvClass … lowRankKeys) are its source's. */
  layers: {
    kvSource: number;
    window: number;
    localRope: boolean;
    kvClass: number;
    slot: number;
    /** Start of the source's region in its page, in elements per token and KV head. */
    pageOffset: number;
    kDim: number;
    vDim: number;
    /** Keys cached pre-RoPE in the source's basis k_up (Eigen Attention). */
    lowRankKeys: boolean;
  }[];
  classes: { pagesPerBlock: number }[];
  /** Elements per token and KV head of a page (lib/kv/layout.ts). */
  pageWidth: number;
}

/** One forward step; see native/model/runner.h (StepInput). */
export interface NativeStep {
  tokens: Int32Array;
  numNew: Int32Array;
  pastLen: Int32Array;
  tables: Int32Array[];
  tableStrides: Int32Array;
  logitRows: Int32Array;
  /**
   * What forward resolves: the logit rows' fp32 logits (rows × vocab; the default), their
   * greedy token ids (Backend::argmax on the device: only the ids cross to the host), or tokens
   * sampled on the device by `sampling` (Backend::sample).
   */
  output?: 'logits' | 'argmax' | 'sample';
  /** One policy per logit row, packed by lib/sampling/device.ts packSampling (output 'sample'). */
  sampling?: { params: Float64Array; penalties: Int32Array; penaltyOffsets: Int32Array };
  /**
   * Also return every layer's attention input (the normalised hidden state that feeds its
   * q/k/v projections): forward then resolves { logits, attentionInputs } with
   * attentionInputs [numLayers][tokens][hidden] fp32 (Eigen Attention calibration).
   */
  captureAttentionInputs?: boolean;
}

/** What a forward with output 'sample' resolves (runner.h SampleResult). */
export interface NativeSampled {
  /** Per logit row: the token (-1 when the row had no finite maximum). */
  ids: Int32Array;
  /** Per row: the chosen token's logprob (NaN unless the row asked for it). */
  logprobs: Float32Array;
  /** [rows × topStride]: each row's most likely tokens first, -1 past its topLogprobs. */
  topIds: Int32Array;
  topLogprobs: Float32Array;
  topStride: number;
}

export interface NativeModelHandle {
  setWeight(name: string, dtype: NativeDType, shape: readonly number[], data: ArrayBufferView): void;
  missingWeights(): string[];
  /** Returns the page size in bytes. */
  allocateKv(numPages: number, dtype: NativeDType, blockSize: number): number;
  forward(step: NativeStep & { output: 'argmax' }): Promise<Int32Array>;
  forward(step: NativeStep & { output?: 'logits'; captureAttentionInputs: true }): Promise<{ logits: Float32Array; attentionInputs: Float32Array }>;
  forward(step: NativeStep & { output: 'sample' }): Promise<NativeSampled>;
  forward(step: NativeStep & { output?: 'logits' }): Promise<Float32Array>;
  dispose(): void;
  info(): { disposed: boolean; backend?: string; weightBytes?: number; kvPages?: number; kvPageBytes?: number };
}

export interface BackendInfo {
  cpu: { available: boolean; threads: number };
  cuda: { built: boolean; available: boolean; deviceCount: number; deviceName: string; reason: string };
}

interface Addon {
  NativeModel: new (desc: NativeModelDesc, options: { backend: string; threads: number }) => NativeModelHandle;
  backendInfo(): BackendInfo;
  /**
   * Runs one backend op on host arrays (bindings/ops_binding.h): the kernels' twin tests, and
   * Eigen Attention calibration's attention outputs (lib/eigen/ops.ts).
   */
  runOp(backend: string, op: string, args: Record<string, unknown>): Record<string, Float32Array>;
}

/** The package root: the first ancestor of this file that holds package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('mixattn: cannot find the package root from ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

let addon: Addon | undefined;

export function loadAddon(): Addon {
  if (!addon) {
    const require = createRequire(import.meta.url);
    const load = require('node-gyp-build') as (dir: string) => Addon;
    try {
      addon = load(packageRoot());
    } catch (e) {
      throw new Error(
        `mixattn: the native addon is not built (${(e as Error).message.split('\n')[0]}); run \`npm install\` or \`npm run build:native\``,
      );
    }
  }
  return addon;
}
