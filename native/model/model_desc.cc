#include "model/model_desc.h"

namespace mixattn {

namespace {
void require(bool ok, const std::string& what) {
  if (!ok) throw Error("invalid model description: " + what);
}
std::string layerField(int i, const char* field) {
  return "layers[" + std::to_string(i) + "]." + field;
}
}  // namespace

void validateModelDesc(const ModelDesc& d) {
  require(d.vocabSize > 0, "vocabSize must be > 0");
  require(d.hiddenSize > 0, "hiddenSize must be > 0");
  require(d.intermediateSize > 0, "intermediateSize must be > 0");
  require(d.numHeads > 0, "numHeads must be > 0");
  require(d.numKvHeads > 0, "numKvHeads must be > 0");
  require(d.numHeads % d.numKvHeads == 0, "numHeads (" + std::to_string(d.numHeads) +
                                              ") must be a multiple of numKvHeads (" +
                                              std::to_string(d.numKvHeads) + ")");
  require(d.headDim > 0 && d.headDim % 2 == 0, "headDim must be a positive even number");
  require(d.numLayers > 0 && (int)d.layers.size() == d.numLayers,
          "layers must list numLayers entries");
  require(!d.classes.empty(), "classes must not be empty");
  for (size_t c = 0; c < d.classes.size(); ++c) {
    const auto& k = d.classes[c];
    require(k.pagesPerBlock > 0, "classes[" + std::to_string(c) + "].pagesPerBlock must be > 0");
    // Low-rank caches need the expanding kernels of the Eigen Attention issue.
    require(k.kDim == d.headDim && k.vDim == d.headDim,
            "classes[" + std::to_string(c) + "]: low-rank K/V widths are not supported yet");
  }
  std::vector<int> owners(d.classes.size(), 0);
  for (int i = 0; i < d.numLayers; ++i) {
    const auto& l = d.layers[i];
    require(l.kvSource >= 0 && l.kvSource <= i, layerField(i, "kvSource") + " must be in [0, " +
                                                    std::to_string(i) + "]");
    require(d.layers[l.kvSource].kvSource == l.kvSource,
            layerField(i, "kvSource") + " must name a layer that owns its cache");
    require(l.window >= 0, layerField(i, "window") + " must be >= 0");
    require(l.kvClass >= 0 && l.kvClass < (int)d.classes.size(),
            layerField(i, "kvClass") + " out of range");
    const auto& src = d.layers[l.kvSource];
    require(src.kvClass == l.kvClass && src.slot == l.slot,
            layerField(i, "kvClass/slot") + " must equal its source's");
    require(l.slot >= 0 && l.slot < d.classes[l.kvClass].pagesPerBlock,
            layerField(i, "slot") + " out of range");
    if (l.kvSource == i) owners[l.kvClass]++;
  }
  for (size_t c = 0; c < d.classes.size(); ++c)
    require(owners[c] == d.classes[c].pagesPerBlock,
            "classes[" + std::to_string(c) + "].pagesPerBlock must equal its number of owners");
}

std::vector<WeightShape> expectedWeights(const ModelDesc& d) {
  const int64_t H = d.hiddenSize, I = d.intermediateSize, qDim = int64_t(d.numHeads) * d.headDim;
  const int64_t kvDim = int64_t(d.numKvHeads) * d.headDim;
  std::vector<WeightShape> w{{"embed", {d.vocabSize, H}}};
  for (int i = 0; i < d.numLayers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const bool owner = d.layers[i].kvSource == i;
    w.push_back({p + "attn_norm", {H}});
    w.push_back({p + "q_proj", {qDim, H}});
    if (d.qkvBias) w.push_back({p + "q_bias", {qDim}});
    if (owner) {
      w.push_back({p + "k_proj", {kvDim, H}});
      w.push_back({p + "v_proj", {kvDim, H}});
      if (d.qkvBias) {
        w.push_back({p + "k_bias", {kvDim}});
        w.push_back({p + "v_bias", {kvDim}});
      }
      if (d.qkNorm) w.push_back({p + "k_norm", {d.headDim}});
    }
    if (d.qkNorm) w.push_back({p + "q_norm", {d.headDim}});
    w.push_back({p + "o_proj", {H, qDim}});
    if (d.sandwichNorm) w.push_back({p + "post_attn_norm", {H}});
    w.push_back({p + "mlp_norm", {H}});
    w.push_back({p + "gate_proj", {I, H}});
    w.push_back({p + "up_proj", {I, H}});
    w.push_back({p + "down_proj", {H, I}});
    if (d.sandwichNorm) w.push_back({p + "post_mlp_norm", {H}});
  }
  w.push_back({"final_norm", {H}});
  if (!d.tieWordEmbeddings) w.push_back({"lm_head", {d.vocabSize, H}});
  return w;
}

}  // namespace mixattn
