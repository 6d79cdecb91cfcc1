/** Types of the public generation API (lib/api/model.ts). */
import type { SamplingParams, TokenLogprob } from '../sampling/index.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenizer/index.js';
import type { BackendName } from '../engine/engine.js';
import type { NativeDType } from '../native.js';
import type { LayerPlan } from '../plan/types.js';

export type { ChatMessage } from '../tokenizer/index.js';

/** A prompt: text (tokenized with the model's special tokens), a conversation (rendered by the chat template), or token ids. */
export type GenerateInput = string | readonly ChatMessage[] | { readonly promptIds: readonly number[] };

export interface GenerateOptions extends SamplingParams {
  /** Stops the generation at the next step; the iterator ends with finishReason 'abort'. */
  readonly signal?: AbortSignal;
  /** Leave special tokens out of the text (default true). */
  readonly skipSpecialTokens?: boolean;
  /** Extra chat template variables (e.g. { enable_thinking: false }). */
  readonly chatTemplateOptions?: Omit<ChatTemplateOptions, 'addGenerationPrompt'>;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface ChunkLogprob {
  readonly token: number;
  /** The token's logprob: log-softmax of the penalised logits / temperature over the whole vocabulary (see RowReducer). */
  readonly logprob: number;
  /** The most likely tokens at this step, when topLogprobs > 0. */
  readonly topLogprobs?: readonly TokenLogprob[];
}

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface Timing {
  /** From admission (KV reserved, first step) to the first token: the prefill, in steps shared with other requests. */
  readonly prefillMs: number;
  /** From the first token to the last. */
  readonly decodeMs: number;
  /** Decode rate: tokens after the first / decodeMs (0 when there is none). */
  readonly tokensPerSecond: number;
}

export interface GenerateChunk {
  /** New text: never a broken UTF-8 character, never part of a stop string ('' without a tokenizer). */
  readonly text: string;
  /** New token ids (a stop token id that ended the generation included; its text is not). */
  readonly tokenIds: readonly number[];
  /** One entry per token id, when logprobs were asked for. */
  readonly logprobs?: readonly ChunkLogprob[];
  /** Set on the last chunk only, with usage and timing. */
  readonly finishReason?: FinishReason;
  /** What stopped it when finishReason is 'stop': the stop token id or the stop string. */
  readonly stopReason?: number | string;
  readonly usage?: Usage;
  readonly timing?: Timing;
}

/** A whole generation, collected (Model.complete). */
export interface Completion {
  readonly text: string;
  readonly tokenIds: number[];
  readonly logprobs?: ChunkLogprob[];
  readonly finishReason: FinishReason;
  readonly stopReason?: number | string;
  readonly usage: Usage;
  readonly timing: Timing;
}

export interface LoadModelOptions {
  /** Run under another layer plan: a preset name, the notation, or a LayerPlan. */
  readonly plan?: string | LayerPlan;
  readonly backend?: BackendName;
  /** CPU threads (0 = all cores). */
  readonly threads?: number;
  /** KV pool size in bytes (256 MiB unless given). */
  readonly kvBudgetBytes?: number;
  readonly kvDtype?: NativeDType;
  /** Reuse the KV blocks of shared prompt prefixes across requests (true unless given). */
  readonly prefixCache?: boolean;
  /** Most prompt tokens of one sequence per step: long prompts are prefilled in chunks beside the decodes (512 unless given). */
  readonly prefillChunk?: number;
  /** Most tokens one step runs, decodes and prefill chunks together (2048 unless given). */
  readonly maxBatchTokens?: number;
  /** Most sequences running (holding KV) at once; more requests wait (256 unless given). */
  readonly maxRunningSequences?: number;
  /**
   * Sample where the logits are (Backend::sample: only token ids and requested logprobs reach
   * the host) rather than downloading each step's logits; the same tokens either way (true
   * unless given).
   */
  readonly deviceSampling?: boolean;
  /** Weight loading progress (stored bytes loaded, total, tensor name); see progressBar(). */
  readonly onProgress?: (loadedBytes: number, totalBytes: number, tensorName: string) => void;
}
