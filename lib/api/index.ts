/** The generation API: loadModel, Model.generate (streaming), Model.complete. */
export { loadModel } from './load.js';
export { Model, DEFAULT_PREFILL_CHUNK, type ModelOptions } from './model.js';
export { modelSamplingDefaults } from './prompt.js';
export type {
  ChatMessage,
  ChunkLogprob,
  Completion,
  FinishReason,
  GenerateChunk,
  GenerateInput,
  GenerateOptions,
  LoadModelOptions,
  Timing,
  Usage,
} from './types.js';
