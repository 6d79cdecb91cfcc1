/** Hugging Face model directories: config mapping, safetensors, loading into an Engine (docs/hf.md). */
export { readModelDir, loadEngine, type ModelDir, type LoadEngineOptions, type GenerationDefaults } from './load.js';
export { Checkpoint, weightsFile, SINGLE_FILE, INDEX_FILE, type TensorInfo, type SafetensorsDtype } from './safetensors.js';
export { mapHfConfig, SUPPORTED_ARCHITECTURES, type HfModelSpec } from './architectures.js';
export { hfTensorName } from './tensor-names.js';
export { ModelLoadError } from './errors.js';
export { progressBar, progressLine, type ProgressCallback } from './progress.js';
