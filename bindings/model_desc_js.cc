#include "model_desc_js.h"

#include "js_fields.h"

namespace mixattn::js {

namespace {
RopeParams ropeFromJs(const Napi::Object& o, const std::string& path) {
  RopeParams r;
  r.theta = float(number(o, "theta", path));
  const std::string scaling = string(o, "scaling", path);
  if (scaling == "default") {
    r.scaling = RopeScaling::Default;
  } else if (scaling == "linear") {
    r.scaling = RopeScaling::Linear;
    r.factor = float(number(o, "factor", path));
  } else if (scaling == "llama3") {
    r.scaling = RopeScaling::Llama3;
    r.factor = float(number(o, "factor", path));
    r.lowFreqFactor = float(number(o, "lowFreqFactor", path));
    r.highFreqFactor = float(number(o, "highFreqFactor", path));
    r.originalMaxPosition = integer(o, "originalMaxPosition", path);
  } else {
    throw Napi::TypeError::New(o.Env(), path + ".scaling '" + scaling + "' is not one of default, linear, llama3");
  }
  return r;
}
}  // namespace

ModelDesc modelDescFromJs(const Napi::Object& o) {
  ModelDesc d;
  const Napi::Object c = object(o, "config", "desc");
  const std::string p = "desc.config";
  d.vocabSize = integer(c, "vocabSize", p);
  d.hiddenSize = integer(c, "hiddenSize", p);
  d.intermediateSize = integer(c, "intermediateSize", p);
  d.numLayers = integer(c, "numLayers", p);
  d.numHeads = integer(c, "numHeads", p);
  d.numKvHeads = integer(c, "numKvHeads", p);
  d.headDim = integer(c, "headDim", p);
  d.rmsNormEps = float(number(c, "rmsNormEps", p));
  d.rope = ropeFromJs(object(c, "rope", p), p + ".rope");
  d.ropeLocal = ropeFromJs(object(c, "ropeLocal", p), p + ".ropeLocal");
  const std::string act = string(c, "activation", p);
  if (act == "silu") d.activation = Activation::SiLU;
  else if (act == "gelu_tanh") d.activation = Activation::GeluTanh;
  else throw Napi::TypeError::New(o.Env(), p + ".activation '" + act + "' is not silu or gelu_tanh");
  d.tieWordEmbeddings = boolean(c, "tieWordEmbeddings", p);
  d.qkvBias = boolean(c, "qkvBias", p);
  d.qkNorm = boolean(c, "qkNorm", p);
  d.sandwichNorm = boolean(c, "sandwichNorm", p);
  d.embeddingScale = float(number(c, "embeddingScale", p));
  d.attnScale = float(number(c, "attnScale", p));
  d.attnSoftcap = float(number(c, "attnSoftcap", p));
  d.finalSoftcap = float(number(c, "finalSoftcap", p));

  const Napi::Array layers = array(o, "layers", "desc");
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    const std::string lp = "desc.layers[" + std::to_string(i) + "]";
    Napi::Value v = layers.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(o.Env(), lp + " must be an object");
    const Napi::Object l = v.As<Napi::Object>();
    LayerDesc ld;
    ld.kvSource = integer(l, "kvSource", lp);
    ld.window = integer(l, "window", lp);
    ld.localRope = boolean(l, "localRope", lp);
    ld.kvClass = integer(l, "kvClass", lp);
    ld.slot = integer(l, "slot", lp);
    ld.pageOffset = integer(l, "pageOffset", lp);
    ld.kDim = integer(l, "kDim", lp);
    ld.vDim = integer(l, "vDim", lp);
    ld.lowRankKeys = boolean(l, "lowRankKeys", lp);
    d.layers.push_back(ld);
  }
  const Napi::Array classes = array(o, "classes", "desc");
  for (uint32_t i = 0; i < classes.Length(); ++i) {
    const std::string cp = "desc.classes[" + std::to_string(i) + "]";
    Napi::Value v = classes.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(o.Env(), cp + " must be an object");
    const Napi::Object k = v.As<Napi::Object>();
    d.classes.push_back(KvClassDesc{integer(k, "pagesPerBlock", cp)});
  }
  d.pageWidth = integer(o, "pageWidth", "desc");
  return d;
}

}  // namespace mixattn::js
