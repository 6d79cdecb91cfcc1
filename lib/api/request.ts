/**
 * One generate() call as a scheduler client: its prompt, its sampler, and the text pipeline
 * (incremental detokenizer → stop matcher) that turns tokens into chunks. The scheduler
 * (lib/serve) owns the engine and the KV sequence, recomputing after a preemption without
 * telling the request: the sampler and the text state simply continue with the next token.
 */
import { Sampler, StopMatcher, type DeviceSampling, type Reduced, type ResolvedSamplingParams, type RowReducer, type SampleResult } from '../sampling/index.js';
import { IncrementalDetokenizer, type Tokenizer } from '../tokenizer/index.js';
import type { NextToken, RequestEnd, SchedulerClient } from '../serve/index.js';
import { Channel } from './channel.js';
import type { ChunkLogprob, FinishReason, GenerateChunk, Timing } from './types.js';

export interface RequestSpec {
  readonly promptIds: readonly number[];
  /** maxTokens already clamped to what the KV pool can hold. */
  readonly params: ResolvedSamplingParams;
  /** Token ids that end the generation (EOS unless ignoreEos, and params.stopTokenIds). */
  readonly stopIds: ReadonlySet<number>;
  readonly tokenizer?: Tokenizer;
  readonly skipSpecialTokens: boolean;
  readonly reducer: RowReducer;
  readonly vocabSize: number;
}

interface Ending {
  readonly reason: FinishReason;
  readonly stopReason?: number | string;
  /** The last token's chunk content, which the final chunk carries. */
  readonly text: string;
  readonly tokenIds: number[];
  readonly logprobs?: ChunkLogprob[];
}

export class Request implements SchedulerClient {
  readonly chunks = new Channel<GenerateChunk>();
  readonly promptIds: readonly number[];
  ending: Ending | undefined;
  private completion = 0;
  private tAdmit = 0;
  private tFirst = 0;
  private readonly sampler: Sampler;
  private readonly matcher: StopMatcher;
  private readonly detok: IncrementalDetokenizer | undefined;
  private retiredResolve!: () => void;
  /** Resolves once the scheduler has released the request's KV blocks and ended its chunks. */
  readonly retired = new Promise<void>((r) => (this.retiredResolve = r));

  constructor(private readonly spec: RequestSpec) {
    this.promptIds = spec.promptIds;
    this.sampler = new Sampler(spec.params, { vocabSize: spec.vocabSize, promptIds: spec.promptIds, reducer: spec.reducer });
    this.matcher = new StopMatcher(spec.params.stop);
    const tok = spec.tokenizer;
    // Models often pad the embedding past the tokenizer's ids: those ids have no text.
    this.detok = tok
      ? new IncrementalDetokenizer(tok, { skipSpecialTokens: spec.skipSpecialTokens, promptIds: spec.promptIds.filter((t) => t < tok.vocabSize) })
      : undefined;
  }

  onStart(now: number): void {
    this.tAdmit = now;
  }

  /** Samples from the logits row of the request's last position; streams the token's chunk unless it is the last. */
  nextToken(row: Float32Array, now: number): NextToken {
    return this.take(this.sampler.sample(row), now);
  }

  /**
   * Every policy of lib/sampling runs on the device (Backend::sample). A request with a
   * host-only logits processor (a logit bias, a grammar) would answer false here.
   */
  canSampleOnDevice(): boolean {
    return true;
  }

  deviceSampling(): DeviceSampling {
    return this.sampler.deviceSampling();
  }

  /** The token Backend::sample drew from deviceSampling()'s policy, taken as nextToken does. */
  acceptSampled(sampled: Reduced, now: number): NextToken {
    return this.take(this.sampler.accept(sampled), now);
  }

  /** Streams the token's chunk unless it is the last. */
  private take(r: SampleResult, now: number): NextToken {
    const p = this.spec.params;
    if (this.completion === 0) this.tFirst = now;
    this.completion++;
    const logprobs = p.logprobs || p.topLogprobs > 0
      ? [{ token: r.token, logprob: r.logprob ?? NaN, ...(r.topLogprobs ? { topLogprobs: r.topLogprobs } : {}) }]
      : undefined;
    const tokenIds = [r.token];
    if (this.spec.stopIds.has(r.token)) {
      this.ending = { reason: 'stop', stopReason: r.token, text: this.flushText(), tokenIds, logprobs };
      return { token: r.token, finish: 'stop' };
    }
    const piece = this.matcher.push(this.detok && r.token < this.spec.tokenizer!.vocabSize ? this.detok.push(r.token) : '');
    if (piece.stopped) {
      this.ending = { reason: 'stop', stopReason: piece.stop, text: piece.text, tokenIds, logprobs };
      return { token: r.token, finish: 'stop' };
    }
    if (this.completion >= p.maxTokens) {
      this.ending = { reason: 'length', text: piece.text + this.flushText(), tokenIds, logprobs };
      return { token: r.token, finish: 'length' };
    }
    this.chunks.push({ text: piece.text, tokenIds, ...(logprobs ? { logprobs } : {}) });
    return { token: r.token };
  }

  /** The scheduler is done with the request (its KV blocks are back in the pool). */
  onEnd(end: RequestEnd, now: number): void {
    if (end.reason === 'error') this.fail(end.error);
    else this.retire(now);
  }

  /** The final chunk, then the end of the stream. */
  private retire(now: number): void {
    const end: Ending = this.ending ?? { reason: 'abort', text: this.flushText(), tokenIds: [] };
    const started = this.tAdmit > 0;
    const first = this.completion > 0 ? this.tFirst : now;
    const timing: Timing = {
      prefillMs: started ? first - this.tAdmit : 0,
      decodeMs: this.completion > 0 ? now - this.tFirst : 0,
      tokensPerSecond: this.completion > 1 && now > this.tFirst ? ((this.completion - 1) * 1000) / (now - this.tFirst) : 0,
    };
    this.chunks.push({
      text: end.text,
      tokenIds: end.tokenIds,
      ...(end.logprobs ? { logprobs: end.logprobs } : {}),
      finishReason: end.reason,
      ...(end.stopReason !== undefined ? { stopReason: end.stopReason } : {}),
      usage: { promptTokens: this.promptIds.length, completionTokens: this.completion },
      timing,
    });
    this.chunks.close();
    this.retiredResolve();
  }

  /** Ends the stream with an error (the step running it failed, or it can never fit). */
  private fail(e: unknown): void {
    this.chunks.fail(e);
    this.retiredResolve();
  }

  /** Text still held by the detokenizer and the stop matcher, at the end of the stream. */
  private flushText(): string {
    const tail = this.matcher.push(this.detok ? this.detok.flush() : '');
    return tail.stopped ? tail.text : tail.text + this.matcher.flush();
  }
}
