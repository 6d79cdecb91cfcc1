/**
 * The architecture of a decoder-only transformer as the engine runs it. Every supported
 * family (Llama, Mistral, Qwen2/3, Gemma 2/3) is expressed with these switches; the HF
 * config loaders map onto it. Weight names are canonical (see `weightShapes`).
 */

export type RopeScaling =
  | { readonly type: 'default' }
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

export type Activation = 'silu' | 'gelu_tanh';

export interface ModelConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  /** RoPE base for global layers. */
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  /**
   * Layers that use the local RoPE (base `ropeThetaLocal`, no scaling), as Gemma 3's
   * sliding layers do. A property of the trained model, not of the plan it runs under.
   */
  readonly localRopeLayers: readonly number[];
  readonly ropeThetaLocal: number;
  /** Gated MLP: SwiGLU ('silu') or GeGLU ('gelu_tanh'). */
  readonly activation: Activation;
  readonly tieWordEmbeddings: boolean;
  /** Bias on the q/k/v projections (Qwen2). */
  readonly qkvBias: boolean;
  /** RMSNorm over each head of q and k before RoPE (Qwen3, Gemma 3). */
  readonly qkNorm: boolean;
  /** Extra RMSNorms after attention and after the MLP (Gemma 2/3). */
  readonly sandwichNorm: boolean;
  /** Multiplier applied to embeddings (Gemma: sqrt(hidden)); 1 elsewhere. */
  readonly embeddingScale: number;
  /** Attention score scale; usually 1/sqrt(headDim). */
  readonly attnScale: number;
  /** tanh soft-cap on attention scores (Gemma 2); 0 = off. */
  readonly attnSoftcap: number;
  /** tanh soft-cap on the final logits (Gemma 2); 0 = off. */
  readonly finalSoftcap: number;
}

/** A Llama-style config with sensible defaults for the fields a caller leaves out. */
export function llamaConfig(p: {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim?: number;
} & Partial<ModelConfig>): ModelConfig {
  const headDim = p.headDim ?? p.hiddenSize / p.numHeads;
  return {
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    localRopeLayers: [],
    ropeThetaLocal: 10000,
    ropeScaling: { type: 'default' },
    activation: 'silu',
    tieWordEmbeddings: false,
    qkvBias: false,
    qkNorm: false,
    sandwichNorm: false,
    embeddingScale: 1,
    attnScale: 1 / Math.sqrt(headDim),
    attnSoftcap: 0,
    finalSoftcap: 0,
    ...p,
    headDim,
  };
}
