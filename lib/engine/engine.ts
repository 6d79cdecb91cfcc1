/**
 * The engine: a native model runner (weights, KV arena, backend) plus the KV block manager
 * that decides which pages each sequence's tokens live in. One `step` call runs one forward
 * pass for a batch of sequences, each bringing any number of new tokens (a prefill chunk or
 * one decode token); the JS work per step is the block bookkeeping and packing the tables.
 */
import type { ModelConfig } from '../model/config.js';
import { weightSpecs } from '../model/weights.js';
import type { LayerPlan } from '../plan/types.js';
import { validatePlan } from '../plan/validate.js';
import { kvLayout, type KvLayout } from '../kv/layout.js';
import { KvBlockManager } from '../kv/block-manager.js';
import { loadAddon, type NativeDType, type NativeModelHandle, type NativeSampled } from '../native.js';
import { packSampling, UNREAD_ROW, type DeviceSampling, type Reduced } from '../sampling/index.js';
import { nativeModelDesc } from './native-desc.js';

export type BackendName = 'cpu' | 'cuda';

export interface EngineOptions {
  /** Compute backend; 'cpu' unless given. */
  readonly backend?: BackendName;
  /** CPU threads; all cores unless given. */
  readonly threads?: number;
  /** Storage type of the KV cache; f32 on the CPU and bf16 on CUDA unless given. */
  readonly kvDtype?: NativeDType;
  /** Tokens per KV block; 16 unless given. */
  readonly blockSize?: number;
  /** KV memory: a number of pages, or a byte budget (pages = floor(budget / pageBytes)). */
  readonly kvPages?: number;
  readonly kvBudgetBytes?: number;
  /** Reuse the KV of shared prompt prefixes (see addSequenceWithPrompt); true unless given. */
  readonly prefixCache?: boolean;
}

/** A weight tensor as the engine takes it: storage bytes in `dtype`, little-endian. */
export interface WeightTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: NativeDType;
  readonly bytes: ArrayBufferView;
}

export interface StepEntry {
  readonly seq: number;
  readonly tokens: ArrayLike<number>;
  /** Which of the new tokens need logits: the last one (default) or all of them. */
  readonly logits?: 'last' | 'all';
}

export interface StepOptions {
  /**
   * What the step returns per entry: the requested rows' logits (rows × vocab, fp32; the
   * default), or their greedy token ids (one int32 per row; the argmax runs on the backend,
   * so only the ids cross to the host — greedy decoding).
   */
  readonly output?: 'logits' | 'argmax';
}

const DEFAULT_KV_BUDGET = 256 * 1024 * 1024;

export class Engine implements Disposable, AsyncDisposable {
  readonly layout: KvLayout;
  readonly blocks: KvBlockManager;
  readonly pageBytes: number;
  private native: NativeModelHandle | undefined;
  private running = false;

  private constructor(
    readonly config: ModelConfig,
    readonly plan: LayerPlan,
    native: NativeModelHandle,
    layout: KvLayout,
    numPages: number,
    prefixCache: boolean,
  ) {
    this.native = native;
    this.layout = layout;
    this.pageBytes = layout.pageBytes;
    this.blocks = new KvBlockManager(layout, numPages, { prefixCache });
  }

  /**
   * Builds an engine from a config, a plan and the weights. Every weight the plan needs
   * must be given, with the canonical names and shapes (lib/model/weights.ts). On any error
   * nothing stays allocated.
   */
  static create(config: ModelConfig, plan: LayerPlan, weights: Iterable<WeightTensor>, opts: EngineOptions = {}): Engine {
    const build = EngineBuild.begin(config, plan, opts);
    try {
      for (const w of weights) build.set(w);
      return build.finish();
    } catch (e) {
      build.abort();
      throw e;
    }
  }

  /**
   * As create, for weights streamed from disk: each tensor is read, handed to the backend
   * and dropped before the next one, without blocking the event loop.
   */
  static async createAsync(
    config: ModelConfig,
    plan: LayerPlan,
    weights: AsyncIterable<WeightTensor> | Iterable<WeightTensor>,
    opts: EngineOptions = {},
  ): Promise<Engine> {
    const build = EngineBuild.begin(config, plan, opts);
    try {
      for await (const w of weights) build.set(w);
      return build.finish();
    } catch (e) {
      build.abort();
      throw e;
    }
  }

  /** @internal used by EngineBuild */
  static fromParts(
    config: ModelConfig,
    plan: LayerPlan,
    native: NativeModelHandle,
    layout: KvLayout,
    numPages: number,
    prefixCache = true,
  ): Engine {
    return new Engine(config, plan, native, layout, numPages, prefixCache);
  }

  get disposed(): boolean {
    return this.native === undefined;
  }

  /** Bytes of weights held by the backend. */
  get weightBytes(): number {
    return this.handle('weightBytes').info().weightBytes ?? 0;
  }

  addSequence(): number {
    return this.blocks.addSequence();
  }

  /**
   * Starts a sequence for a prompt, reusing the cached KV of its longest cached prefix: the
   * first `cachedTokens` tokens (a multiple of the block size, never the whole prompt) are
   * already in the cache, so the first step brings promptTokens from cachedTokens on.
   */
  addSequenceWithPrompt(promptTokens: ArrayLike<number>, opts: { salt?: number } = {}): { seq: number; cachedTokens: number } {
    const seq = this.blocks.addSequence({ promptTokens, salt: opts.salt });
    return { seq, cachedTokens: this.blocks.length(seq) };
  }

  /** Ends a sequence and returns every KV block it held to the pool. */
  releaseSequence(seq: number): void {
    this.blocks.release(seq);
  }

  /**
   * Runs one forward step. Returns, per entry, the logits of the requested rows
   * (rows × vocab, fp32), or with `{ output: 'argmax' }` their greedy token ids (one per
   * row, the lowest index among equal maxima, computed on the backend). Throws
   * KvCacheFullError, before running anything, when the pool cannot hold the new tokens.
   */
  step(entries: readonly StepEntry[], opts: StepOptions & { readonly output: 'argmax' }): Promise<Int32Array[]>;
  step(entries: readonly StepEntry[], opts?: StepOptions & { readonly output?: 'logits' }): Promise<Float32Array[]>;
  async step(entries: readonly StepEntry[], opts: StepOptions = {}): Promise<Float32Array[] | Int32Array[]> {
    const argmaxOut = opts.output === 'argmax';
    if (opts.output !== undefined && opts.output !== 'logits' && !argmaxOut) {
      throw new RangeError(`step: output must be 'logits' or 'argmax', got ${String(opts.output)}`);
    }
    const { step, rowsPerEntry } = this.prepare(entries, 'step');
    const native = this.handle('step');
    const out = await this.run<Float32Array | Int32Array>(entries, () =>
      argmaxOut ? native.forward({ ...step, output: 'argmax' }) : native.forward(step),
    );
    const slices: (Float32Array | Int32Array)[] = [];
    const width = argmaxOut ? 1 : this.config.vocabSize;
    let r = 0;
    for (const n of rowsPerEntry) {
      slices.push(out.subarray(r * width, (r + n) * width));
      r += n;
    }
    return slices as Float32Array[] | Int32Array[];
  }

  /**
   * As step (the requested rows' logits), and every layer's attention input for the step's
   * tokens — the normalised hidden state that feeds the layer's q/k/v projections — as
   * attentionInputs [numLayers][tokens][hidden] fp32, the tokens in entry order (Eigen
   * Attention calibration, lib/eigen).
   */
  async stepCapture(entries: readonly StepEntry[]): Promise<{ logits: Float32Array[]; attentionInputs: Float32Array }> {
    const { step, rowsPerEntry } = this.prepare(entries, 'stepCapture');
    const out = await this.run(entries, () => this.handle('stepCapture').forward({ ...step, captureAttentionInputs: true }));
    const logits: Float32Array[] = [];
    let r = 0;
    for (const n of rowsPerEntry) {
      logits.push(out.logits.subarray(r * this.config.vocabSize, (r + n) * this.config.vocabSize));
      r += n;
    }
    return { logits, attentionInputs: out.attentionInputs };
  }

  /**
   * Runs one forward step and samples each entry's last row where the logits are
   * (Backend::sample): only the tokens and the requested logprobs cross to the host. One
   * policy per entry (lib/sampling Sampler.deviceSampling); undefined for an entry whose token
   * nobody reads (a prefill chunk short of its prompt's end). Entries must not ask for 'all'
   * rows. A token of -1 reports a row without a finite maximum (Sampler.accept throws it).
   */
  async stepSampled(entries: readonly StepEntry[], sampling: readonly (DeviceSampling | undefined)[]): Promise<Reduced[]> {
    if (sampling.length !== entries.length) {
      throw new RangeError(`stepSampled: ${sampling.length} sampling policies for ${entries.length} entries`);
    }
    entries.forEach((e, i) => {
      if (e.logits === 'all') throw new RangeError(`stepSampled: entries[${i}] asks for all rows; sampling takes the last one`);
    });
    const packed = packSampling(sampling.map((s) => s ?? UNREAD_ROW));
    const { step } = this.prepare(entries, 'stepSampled');
    const out = await this.run(entries, () => this.handle('stepSampled').forward({ ...step, output: 'sample', sampling: packed }));
    return sampledRows(out, sampling);
  }

  /** Validates the entries, reserves their KV (all or nothing) and packs the native step. */
  private prepare(entries: readonly StepEntry[], method: string) {
    this.handle(method);
    if (this.running) throw new Error(`${method}: another step is still running on this engine`);
    if (entries.length === 0) throw new RangeError(`${method}: no entries`);
    const seen = new Set<number>();
    let numTokens = 0;
    for (const [i, e] of entries.entries()) {
      if (seen.has(e.seq)) throw new RangeError(`${method}: entries[${i}] repeats sequence ${e.seq}`);
      seen.add(e.seq);
      if (e.tokens.length < 1) throw new RangeError(`${method}: entries[${i}].tokens is empty`);
      numTokens += e.tokens.length;
    }
    // All or nothing: a batch that does not fit changes no reservation.
    this.blocks.reserveBatch(
      entries.map((e) => e.seq),
      entries.map((e) => e.tokens.length),
    );

    const S = entries.length;
    const tokens = new Int32Array(numTokens);
    const numNew = new Int32Array(S);
    const pastLen = new Int32Array(S);
    const logitRows: number[] = [];
    const rowsPerEntry: number[] = [];
    let row = 0;
    entries.forEach((e, s) => {
      const k = e.tokens.length;
      for (let j = 0; j < k; j++) tokens[row + j] = e.tokens[j];
      numNew[s] = k;
      pastLen[s] = this.blocks.length(e.seq);
      if (e.logits === 'all') for (let j = 0; j < k; j++) logitRows.push(row + j);
      else logitRows.push(row + k - 1);
      rowsPerEntry.push(e.logits === 'all' ? k : 1);
      row += k;
    });
    const { tables, tableStrides } = this.packTables(entries, pastLen, numNew);
    return { step: { tokens, numNew, pastLen, tables, tableStrides, logitRows: Int32Array.from(logitRows) }, rowsPerEntry };
  }

  /** Runs a prepared step, then commits the entries' tokens to their blocks. */
  private async run<T>(entries: readonly StepEntry[], forward: () => Promise<T>): Promise<T> {
    this.running = true;
    let out: T;
    try {
      out = await forward();
    } finally {
      this.running = false;
    }
    // The tokens let the block manager key the blocks they fill, for prefix caching.
    for (const e of entries) this.blocks.commit(e.seq, e.tokens.length, e.tokens);
    return out;
  }

  /**
   * Each class's block-table rows for the batch as one strided Int32Array. A lone entry's row
   * is passed as a view of the block manager's table (the addon copies it before returning):
   * no per-step allocation or copy of a table that grows with the context.
   */
  private packTables(entries: readonly StepEntry[], pastLen: Int32Array, numNew: Int32Array) {
    const bs = this.layout.blockSize;
    const S = entries.length;
    const classes = this.layout.classes;
    const tables: Int32Array[] = [];
    const tableStrides = new Int32Array(classes.length);
    for (let ci = 0; ci < classes.length; ci++) {
      const ppb = classes[ci].pagesPerBlock;
      let stride = 0;
      for (let s = 0; s < S; s++) stride = Math.max(stride, Math.ceil((pastLen[s] + numNew[s]) / bs) * ppb);
      tableStrides[ci] = stride;
      if (S === 1) {
        tables.push(this.blocks.table(entries[0].seq, ci).subarray(0, stride));
        continue;
      }
      const t = new Int32Array(stride * S);
      for (let s = 0; s < S; s++) {
        const used = Math.ceil((pastLen[s] + numNew[s]) / bs) * ppb;
        t.set(this.blocks.table(entries[s].seq, ci).subarray(0, used), s * stride);
        t.fill(-1, s * stride + used, (s + 1) * stride);
      }
      tables.push(t);
    }
    return { tables, tableStrides };
  }

  dispose(): void {
    this.native?.dispose();
    this.native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  private handle(method: string): NativeModelHandle {
    if (!this.native) throw new Error(`${method}: the engine has been disposed`);
    return this.native;
  }
}

/** One Reduced per row of a native sampled step (top logprobs only for the rows that asked). */
function sampledRows(out: NativeSampled, sampling: readonly (DeviceSampling | undefined)[]): Reduced[] {
  const K = out.topStride;
  return sampling.map((s, r) => {
    const n = s?.topLogprobs ?? 0;
    const topLogprobs = [];
    for (let j = 0; j < n && out.topIds[r * K + j] >= 0; j++) topLogprobs.push({ token: out.topIds[r * K + j], logprob: out.topLogprobs[r * K + j] });
    return { token: out.ids[r], logprob: out.logprobs[r], topLogprobs };
  });
}

/** An engine under construction: the native model exists, weights are arriving. */
class EngineBuild {
  private constructor(
    private readonly config: ModelConfig,
    private readonly plan: LayerPlan,
    private readonly native: NativeModelHandle,
    private readonly expected: ReadonlyMap<string, readonly number[]>,
    private readonly layout: KvLayout,
    private readonly numPages: number,
    private readonly kvDtype: NativeDType,
    private readonly prefixCache: boolean,
  ) {}

  static begin(config: ModelConfig, plan: LayerPlan, opts: EngineOptions): EngineBuild {
    validatePlan(plan, { headDim: config.headDim });
    const expected = new Map(weightSpecs(config, plan).map((w) => [w.name, w.shape]));
    // bf16 pages on the GPU (the tensor-core attention kernels read bf16); exact f32 on the CPU.
    const kvDtype = opts.kvDtype ?? (opts.backend === 'cuda' ? 'bf16' : 'f32');
    const layout = kvLayout(plan, {
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      blockSize: opts.blockSize ?? 16,
      dtypeBytes: kvDtype === 'f32' ? 4 : 2,
    });
    const numPages = opts.kvPages ?? Math.floor((opts.kvBudgetBytes ?? DEFAULT_KV_BUDGET) / layout.pageBytes);
    if (!Number.isInteger(numPages) || numPages < 1) {
      throw new RangeError(`kvPages must be a positive integer (got ${numPages}; a page holds ${layout.pageBytes} bytes)`);
    }
    const threads = opts.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0) throw new RangeError(`threads must be an integer >= 0, got ${threads}`);
    const native = new (loadAddon().NativeModel)(nativeModelDesc(config, plan, layout), {
      backend: opts.backend ?? 'cpu',
      threads,
    });
    return new EngineBuild(config, plan, native, expected, layout, numPages, kvDtype, opts.prefixCache ?? true);
  }

  set(w: WeightTensor): void {
    if (!this.expected.has(w.name)) throw new Error(`weight '${w.name}' is not part of this model under plan '${this.plan.name}'`);
    this.native.setWeight(w.name, w.dtype, w.shape, w.bytes);
  }

  finish(): Engine {
    const missing = this.native.missingWeights();
    if (missing.length > 0) {
      throw new Error(`weights are missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
    }
    this.native.allocateKv(this.numPages, this.kvDtype, this.layout.blockSize);
    return Engine.fromParts(this.config, this.plan, this.native, this.layout, this.numPages, this.prefixCache);
  }

  abort(): void {
    this.native.dispose();
  }
}
