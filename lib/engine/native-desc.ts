/** Translates a model config, plan and KV layout into the native runner's description. */
import type { ModelConfig, RopeScaling } from '../model/config.js';
import type { LayerPlan } from '../plan/types.js';
import type { KvLayout } from '../kv/layout.js';
import { layerKvWidths } from '../model/kv-widths.js';
import type { NativeModelDesc, NativeRope } from '../native.js';

export function nativeRope(theta: number, s: RopeScaling): NativeRope {
  switch (s.type) {
    case 'default':
      return { theta, scaling: 'default' };
    case 'linear':
      return { theta, scaling: 'linear', factor: s.factor };
    case 'llama3':
      return {
        theta,
        scaling: 'llama3',
        factor: s.factor,
        lowFreqFactor: s.lowFreqFactor,
        highFreqFactor: s.highFreqFactor,
        originalMaxPosition: s.originalMaxPositionEmbeddings,
      };
  }
}

export function nativeModelDesc(cfg: ModelConfig, plan: LayerPlan, layout: KvLayout): NativeModelDesc {
  const local = new Set(cfg.localRopeLayers);
  const widths = layerKvWidths(cfg, plan);
  return {
    config: {
      vocabSize: cfg.vocabSize,
      hiddenSize: cfg.hiddenSize,
      intermediateSize: cfg.intermediateSize,
      numLayers: cfg.numLayers,
      numHeads: cfg.numHeads,
      numKvHeads: cfg.numKvHeads,
      headDim: cfg.headDim,
      rmsNormEps: cfg.rmsNormEps,
      rope: nativeRope(cfg.ropeTheta, cfg.ropeScaling),
      ropeLocal: nativeRope(cfg.ropeThetaLocal, { type: 'default' }),
      activation: cfg.activation,
      tieWordEmbeddings: cfg.tieWordEmbeddings,
      qkvBias: cfg.qkvBias,
      qkNorm: cfg.qkNorm,
      sandwichNorm: cfg.sandwichNorm,
      embeddingScale: cfg.embeddingScale,
      attnScale: cfg.attnScale,
      attnSoftcap: cfg.attnSoftcap,
      finalSoftcap: cfg.finalSoftcap,
    },
    layers: plan.layers.map((l, i) => {
      const place = layout.layerPlacement[i];
      return {
        kvSource: l.kvSource,
        window: l.attention.kind === 'sliding' ? l.attention.window : 0,
        localRope: local.has(i),
        kvClass: layout.layerClass[i],
        slot: place.slot,
        pageOffset: place.offset,
        kDim: place.kDim,
        vDim: place.vDim,
        lowRankKeys: widths[i].lowRankKeys,
      };
    }),
    classes: layout.classes.map((c) => ({ pagesPerBlock: c.pagesPerBlock })),
    pageWidth: layout.pageWidth,
  };
}
