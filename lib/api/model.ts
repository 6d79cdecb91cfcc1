/**
 * A loaded model: an Engine, its tokenizer (when the directory has one), and the
 * continuous-batching scheduler (lib/serve) that runs every generate() in flight in shared
 * steps: requests join and leave the batch at every step, long prompts are prefilled in
 * chunks beside the decodes, and when the KV pool runs short the newest request is
 * preempted and later recomputed, invisibly to its stream.
 *
 * Cancellation: when a generate()'s AbortSignal fires, the generation stops (at once when it
 * is waiting, else after the current step), its KV blocks go back to the pool, and the iterator ends normally with a
 * last chunk whose finishReason is 'abort' (with usage and timing): nothing is thrown, so
 * the text produced so far is kept (as node-llama-cpp and the OpenAI SDK's stream do, not
 * as fetch() does). Leaving a `for await` early (break, return, throw) also releases the
 * sequence before the loop statement completes.
 */
import type { Engine } from '../engine/engine.js';
import type { ModelConfig } from '../model/config.js';
import type { LayerPlan } from '../plan/types.js';
import type { GenerationDefaults } from '../hf/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { CpuReducer, type SamplingParams } from '../sampling/index.js';
import { Scheduler, type RequestHandle, type SchedulerLimits } from '../serve/index.js';
import { Request } from './request.js';
import { fitToKv, modelSamplingDefaults, promptIds, resolveParams, stopIds } from './prompt.js';
import type { ChunkLogprob, Completion, GenerateChunk, GenerateInput, GenerateOptions } from './types.js';

export interface ModelOptions extends SchedulerLimits {
  readonly tokenizer?: Tokenizer;
  /** generation_config.json's special ids and sampling defaults. */
  readonly generation?: GenerationDefaults;
  /** Most prompt tokens of one sequence per step (512 unless given). */
  readonly prefillChunk?: number;
  /** The model directory and HF architecture, when loaded from one. */
  readonly dir?: string;
  readonly architecture?: string;
}

export const DEFAULT_PREFILL_CHUNK = 512;

export class Model implements Disposable, AsyncDisposable {
  readonly config: ModelConfig;
  readonly plan: LayerPlan;
  readonly tokenizer: Tokenizer | undefined;
  readonly generation: GenerationDefaults | undefined;
  readonly dir: string | undefined;
  readonly architecture: string | undefined;
  /** Sampling defaults taken from the model's generation config (see modelSamplingDefaults). */
  readonly samplingDefaults: SamplingParams;
  /** Ids that end generation unless ignoreEos: generation_config's and the tokenizer's EOS. */
  readonly eosTokenIds: readonly number[];
  /** Runs every generation; its metrics() are what a server exports. */
  readonly scheduler: Scheduler;
  private readonly reducer: CpuReducer;
  private isDisposed = false;

  /** Wraps an engine (loadModel builds one from a model directory). The model owns it from now on. */
  constructor(
    readonly engine: Engine,
    opts: ModelOptions = {},
  ) {
    this.config = engine.config;
    this.plan = engine.plan;
    this.tokenizer = opts.tokenizer;
    this.generation = opts.generation;
    this.dir = opts.dir;
    this.architecture = opts.architecture;
    this.samplingDefaults = modelSamplingDefaults(opts.generation);
    const V = engine.config.vocabSize;
    const eos = [...(opts.generation?.eosTokenIds ?? []), ...(opts.tokenizer?.eosTokenIds ?? [])].filter((t) => t < V);
    this.eosTokenIds = [...new Set(eos)];
    this.scheduler = new Scheduler(engine, {
      deviceSampling: opts.deviceSampling,
      maxBatchTokens: opts.maxBatchTokens,
      maxRunningSequences: opts.maxRunningSequences,
      prefillChunk: opts.prefillChunk ?? DEFAULT_PREFILL_CHUNK,
      admissionWatermarkPages: opts.admissionWatermarkPages,
    });
    this.reducer = new CpuReducer(V);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** The prompt's token ids, as generate() would run them. */
  encode(input: GenerateInput, opts: GenerateOptions = {}): number[] {
    return promptIds(input, this.tokenizer, this.config.vocabSize, opts);
  }

  /**
   * Streams a generation. Invalid options, a prompt the KV pool cannot hold and a disposed
   * model throw here, synchronously; the work starts on the first next(). Several
   * generations may be in flight at once (they share steps).
   */
  generate(input: GenerateInput, options: GenerateOptions = {}): AsyncIterableIterator<GenerateChunk> {
    if (this.isDisposed) throw new Error('generate: the model has been disposed');
    const V = this.config.vocabSize;
    const params = resolveParams(options, this.samplingDefaults, V, this.tokenizer !== undefined);
    const ids = promptIds(input, this.tokenizer, V, options);
    const fit = fitToKv(this.engine.layout, this.engine.blocks.numPages, ids.length, params.maxTokens);
    const req = new Request({
      promptIds: ids,
      params: { ...params, maxTokens: fit.maxTokens },
      stopIds: stopIds(params, this.eosTokenIds),
      tokenizer: this.tokenizer,
      skipSpecialTokens: options.skipSpecialTokens ?? true,
      reducer: this.reducer,
      vocabSize: V,
    });
    return this.stream(req, options.signal);
  }

  /** Runs a generation to the end and collects it. */
  async complete(input: GenerateInput, options: GenerateOptions = {}): Promise<Completion> {
    let text = '';
    const tokenIds: number[] = [];
    const logprobs: ChunkLogprob[] = [];
    for await (const c of this.generate(input, options)) {
      text += c.text;
      tokenIds.push(...c.tokenIds);
      if (c.logprobs) logprobs.push(...c.logprobs);
      if (c.finishReason) {
        return {
          text,
          tokenIds,
          ...(c.logprobs || logprobs.length > 0 ? { logprobs } : {}),
          finishReason: c.finishReason,
          ...(c.stopReason !== undefined ? { stopReason: c.stopReason } : {}),
          usage: c.usage!,
          timing: c.timing!,
        };
      }
    }
    throw new Error('generate: the stream ended without a final chunk');
  }

  private stream(req: Request, signal: AbortSignal | undefined): AsyncIterableIterator<GenerateChunk> {
    let started = false;
    let handle: RequestHandle | undefined;
    const onAbort = () => handle?.cancel();
    const start = () => {
      started = true;
      if (this.isDisposed) throw new Error('generate: the model has been disposed');
      handle = this.scheduler.submit(req);
      void req.retired.then(() => signal?.removeEventListener('abort', onAbort));
      if (signal?.aborted) handle.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
    };
    const iter: AsyncIterableIterator<GenerateChunk> = {
      next: async () => {
        if (!started) start();
        return req.chunks.next();
      },
      return: async () => {
        if (started) {
          handle?.cancel();
          await req.retired;
        }
        started = true; // a stream left before it began never starts
        req.chunks.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iter,
    };
    return iter;
  }

  /**
   * Releases the native memory. Generations in flight end with finishReason 'abort'; a step
   * running on the thread pool finishes first (the native side frees after it).
   */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.scheduler.cancelAll();
    this.engine.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** dispose(), then waits until every generation in flight has ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
    await this.scheduler.idle();
  }
}
