/**
 * Layer plans: for every layer, which tokens it attends to (global or a sliding window),
 * whose KV cache it reads (its own, or an earlier layer's), and optionally the low-rank
 * widths its cached K/V are kept at (Eigen Attention). See DESIGN.md section 2.
 */

/** Per-KV-head widths of cached keys and values when they are kept in a low-rank space. */
export interface KvRank {
  readonly k: number;
  readonly v: number;
}

export type AttentionKind =
  | { readonly kind: 'global' }
  | { readonly kind: 'sliding'; readonly window: number };

export interface LayerSpec {
  readonly attention: AttentionKind;
  /** Index of the layer whose KV cache this layer reads; equal to its own index for owners. */
  readonly kvSource: number;
  /** Low-rank K/V widths; absent means full head width. */
  readonly kvRank?: KvRank;
}

export interface LayerPlan {
  /** Preset name or 'custom'; informational only. */
  readonly name: string;
  readonly layers: readonly LayerSpec[];
}

/** Error raised for an invalid plan; `layer` names the offending layer when there is one. */
export class PlanError extends Error {
  constructor(message: string, readonly layer?: number) {
    super(message);
    this.name = 'PlanError';
  }
}

export const isOwner = (plan: LayerPlan, i: number): boolean => plan.layers[i].kvSource === i;
