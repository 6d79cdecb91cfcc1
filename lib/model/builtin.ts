/**
 * Built-in model sizes for random-weights models: runnable with nothing downloaded, for
 * the demo, tests and benchmarks. Weights come from lib/model/random-weights.ts (seeded).
 */
import { llamaConfig, type ModelConfig } from './config.js';

export const BUILTIN_SIZES = {
  /** 12 layers, GQA 8:2, ~6M parameters: the demo model. */
  demo: llamaConfig({
    vocabSize: 4096,
    hiddenSize: 256,
    intermediateSize: 704,
    numLayers: 12,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 32,
  }),
  /** 4 layers, tiny: unit tests. */
  tiny: llamaConfig({
    vocabSize: 97,
    hiddenSize: 48,
    intermediateSize: 80,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 12,
  }),
} as const satisfies Record<string, ModelConfig>;

export type BuiltinSize = keyof typeof BUILTIN_SIZES;

export function builtinConfig(name: string): ModelConfig {
  const cfg = (BUILTIN_SIZES as Record<string, ModelConfig>)[name];
  if (!cfg) throw new Error(`unknown built-in model size '${name}' (expected one of ${Object.keys(BUILTIN_SIZES).join(', ')})`);
  return cfg;
}
