// What the runner needs to know about a model: its architecture (mirrors lib/model/config.ts),
// the per-layer plan (attention window, KV source) and the KV layout (cache class and slot of
// each layer, mirrors lib/kv/layout.ts). Built by the bindings from the JS description.
#pragma once

#include <string>
#include <vector>

#include "backend.h"

namespace mixattn {

// The cache a layer reads is its source's: kvClass, slot, pageOffset, kDim, vDim and
// lowRankKeys repeat the source's values (validateModelDesc checks).
struct LayerDesc {
  int kvSource = 0;     // == own index for owners
  int window = 0;       // 0 = global
  bool localRope = false;
  int kvClass = 0;      // cache class of the source
  int slot = 0;         // the source's page within each block of its class
  // Where the source's region starts in that page, in elements per token and KV head (the
  // region begins pageOffset x blockSize x numKvHeads elements in): low-rank owners share pages.
  int pageOffset = 0;
  int kDim = 0;         // cached key width per KV head (headDim unless low-rank)
  int vDim = 0;         // cached value width per KV head (headDim unless low-rank)
  // Keys cached pre-RoPE as kDim coefficients in the source's basis k_up [headDim, kDim]
  // (Eigen Attention); attention expands and rotates them (Backend::attentionLowRankKeys).
  bool lowRankKeys = false;
};

struct KvClassDesc {
  int pagesPerBlock = 1;  // pages per block: the pages the class's owners are packed into
};

struct ModelDesc {
  int vocabSize = 0, hiddenSize = 0, intermediateSize = 0;
  int numLayers = 0, numHeads = 0, numKvHeads = 0, headDim = 0;
  float rmsNormEps = 1e-5f;
  RopeParams rope;       // global layers
  RopeParams ropeLocal;  // layers with localRope
  Activation activation = Activation::SiLU;
  bool tieWordEmbeddings = false, qkvBias = false, qkNorm = false, sandwichNorm = false;
  float embeddingScale = 1.f, attnScale = 1.f, attnSoftcap = 0.f, finalSoftcap = 0.f;
  std::vector<LayerDesc> layers;
  std::vector<KvClassDesc> classes;
  // Elements per token and KV head of one page (the widest owner's kDim + vDim): a page is
  // blockSize x numKvHeads x pageWidth elements.
  int pageWidth = 0;
};

// Checks internal consistency (sizes, sources, classes); throws Error naming the field.
void validateModelDesc(const ModelDesc& d);

struct WeightShape {
  std::string name;
  std::vector<int64_t> shape;
};

// Canonical weight names and shapes, as lib/model/weights.ts lists them.
std::vector<WeightShape> expectedWeights(const ModelDesc& d);

}  // namespace mixattn
