/**
 * mixattn's public API.
 *
 *   import { loadModel } from 'mixattn';
 *   await using model = await loadModel('path/to/hf-model', { plan: 'ma' });
 *   for await (const chunk of model.generate('Hello', { maxTokens: 32 })) process.stdout.write(chunk.text);
 */

// Generation: load a model directory, stream or collect generations.
export * from './api/index.js';

// Sampling policy: parameters, sampler, the reductions seam, stop strings.
export * from './sampling/index.js';

// The engine underneath (native runner + paged KV) and the model description it runs.
export { Engine, type BackendName, type EngineOptions, type StepEntry, type StepOptions, type WeightTensor } from './engine/engine.js';
export { llamaConfig, type ModelConfig, type RopeScaling, type Activation } from './model/config.js';
export { BUILTIN_SIZES, builtinConfig, type BuiltinSize } from './model/builtin.js';
export { randomWeights, type RandomWeightsOptions } from './model/random-weights.js';
export { fastWeights } from './model/fast-weights.js';
export { Prng, hashSeed } from './model/prng.js';
export type { NativeDType } from './native.js';

// Layer plans (presets, notation, validation) and the KV memory model / reports.
export * from './plan/index.js';
export * from './kv/index.js';

// Model directories and tokenizers.
export { readModelDir, loadEngine, ModelLoadError, progressBar, SUPPORTED_ARCHITECTURES, type ModelDir, type LoadEngineOptions, type GenerationDefaults } from './hf/index.js';
export { Tokenizer, IncrementalDetokenizer, ChatTemplateError, TokenizerError, type IncrementalDetokenizerOptions } from './tokenizer/index.js';

// Eigen Attention: calibrate a model directory into a low-rank K/V one (docs/eigen.md).
export { calibrate, CalibrationError, type CalibrateOptions, type CalibrateBackend, type CalibrationReport, type LayerReport } from './eigen/index.js';

// Serving: the continuous-batching scheduler and the OpenAI-compatible HTTP server.
export * from './serve/index.js';
export * from './server/index.js';
