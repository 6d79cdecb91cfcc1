#include "model/model_desc.h"

#include <utility>

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
  for (size_t c = 0; c < d.classes.size(); ++c)
    require(d.classes[c].pagesPerBlock > 0,
            "classes[" + std::to_string(c) + "].pagesPerBlock must be > 0");
  require(d.pageWidth > 0, "pageWidth must be > 0");
  const std::string hd = std::to_string(d.headDim);
  // Per class and slot: the [offset, offset + kDim + vDim) regions of its owners.
  std::vector<std::vector<std::vector<std::pair<int, int>>>> regions(d.classes.size());
  for (size_t c = 0; c < d.classes.size(); ++c) regions[c].resize(d.classes[c].pagesPerBlock);
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
    require(l.kDim >= 1 && l.kDim <= d.headDim,
            layerField(i, "kDim") + " " + std::to_string(l.kDim) + " must be in [1, headDim=" + hd + "]");
    require(l.vDim >= 1 && l.vDim <= d.headDim,
            layerField(i, "vDim") + " " + std::to_string(l.vDim) + " must be in [1, headDim=" + hd + "]");
    require(l.lowRankKeys || l.kDim == d.headDim,
            layerField(i, "kDim") + " " + std::to_string(l.kDim) +
                ": keys narrower than headDim=" + hd + " must be low-rank keys (lowRankKeys)");
    require(!(l.lowRankKeys && d.qkNorm),
            layerField(i, "lowRankKeys") + ": low-rank keys cannot be used with q/k norms");
    require(l.pageOffset >= 0 && l.pageOffset + l.kDim + l.vDim <= d.pageWidth,
            layerField(i, "pageOffset") + " " + std::to_string(l.pageOffset) + " + kDim + vDim (" +
                std::to_string(l.kDim + l.vDim) + ") must fit pageWidth " + std::to_string(d.pageWidth));
    require(src.pageOffset == l.pageOffset && src.kDim == l.kDim && src.vDim == l.vDim &&
                src.lowRankKeys == l.lowRankKeys,
            layerField(i, "pageOffset/kDim/vDim/lowRankKeys") + " must equal its source's");
    if (l.kvSource != i) continue;
    auto& slot = regions[l.kvClass][l.slot];
    for (auto [from, to] : slot)
      require(l.pageOffset >= to || l.pageOffset + l.kDim + l.vDim <= from,
              layerField(i, "pageOffset") + " overlaps another owner's region of its page");
    slot.emplace_back(l.pageOffset, l.pageOffset + l.kDim + l.vDim);
  }
  for (size_t c = 0; c < d.classes.size(); ++c)
    for (size_t s = 0; s < regions[c].size(); ++s)
      require(!regions[c][s].empty(), "classes[" + std::to_string(c) + "]: no owner uses page " +
                                          std::to_string(s) + " of its blocks (pagesPerBlock too large)");
}

std::vector<WeightShape> expectedWeights(const ModelDesc& d) {
  const int64_t H = d.hiddenSize, I = d.intermediateSize, qDim = int64_t(d.numHeads) * d.headDim;
  std::vector<WeightShape> w{{"embed", {d.vocabSize, H}}};
  for (int i = 0; i < d.numLayers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const LayerDesc& l = d.layers[i];
    const bool owner = l.kvSource == i;
    const int64_t kDim = int64_t(d.numKvHeads) * l.kDim, vDim = int64_t(d.numKvHeads) * l.vDim;
    w.push_back({p + "attn_norm", {H}});
    w.push_back({p + "q_proj", {qDim, H}});
    if (d.qkvBias) w.push_back({p + "q_bias", {qDim}});
    if (owner) {
      w.push_back({p + "k_proj", {kDim, H}});
      if (l.lowRankKeys) w.push_back({p + "k_up", {d.headDim, l.kDim}});
      w.push_back({p + "v_proj", {vDim, H}});
      if (d.qkvBias) {
        w.push_back({p + "k_bias", {kDim}});
        w.push_back({p + "v_bias", {vDim}});
      }
      if (d.qkNorm) w.push_back({p + "k_norm", {d.headDim}});
    }
    if (d.qkNorm) w.push_back({p + "q_norm", {d.headDim}});
    w.push_back({p + "o_proj", {H, int64_t(d.numHeads) * l.vDim}});
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
