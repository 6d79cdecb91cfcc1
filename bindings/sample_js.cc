#include "sample_js.h"

#include <cmath>

#include "js_fields.h"

namespace mixattn::js {

namespace {
constexpr int kParamsPerRow = 10;
}

SampleInput sampleInputOf(const Napi::Object& o, const std::string& path, int rows) {
  Napi::Env env = o.Env();
  Napi::Value pv = field(o, "params", path);
  if (!pv.IsTypedArray() || pv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, path + ".params must be a Float64Array");
  Napi::Float64Array params = pv.As<Napi::Float64Array>();
  if (params.ElementLength() != size_t(rows) * kParamsPerRow)
    throw Napi::TypeError::New(env, path + ".params must hold " + std::to_string(kParamsPerRow) +
                                        " numbers for each of the " + std::to_string(rows) + " rows");
  SampleInput in;
  in.penalties = int32s(o, "penalties", path);
  const std::vector<int32_t> offsets = int32s(o, "penaltyOffsets", path);
  if (offsets.size() != size_t(rows) + 1 || in.penalties.size() % 2 != 0 ||
      offsets[rows] != int64_t(in.penalties.size() / 2))
    throw Napi::TypeError::New(env, path + ".penaltyOffsets must hold rows + 1 offsets ending at the number of (id, count) pairs in " + path + ".penalties");
  in.rows.resize(size_t(rows));
  for (int r = 0; r < rows; ++r) {
    const double* v = params.Data() + size_t(r) * kParamsPerRow;
    const std::string at = path + ".params row " + std::to_string(r) + ": ";
    auto integral = [&](double d, const char* name) {
      if (!(d >= 0 && d <= 2147483647.0 && d == std::floor(d)))
        throw Napi::TypeError::New(env, at + name + " must be a non-negative integer");
      return int32_t(d);
    };
    SampleRow& s = in.rows[size_t(r)];
    s.uniform = v[0];
    s.temperature = float(v[1]);
    s.topK = integral(v[2], "topK");
    s.topP = float(v[3]);
    s.minP = float(v[4]);
    s.repetitionPenalty = float(v[5]);
    s.presencePenalty = float(v[6]);
    s.frequencyPenalty = float(v[7]);
    s.logprobs = integral(v[8], "logprobs");
    s.topLogprobs = integral(v[9], "topLogprobs");
    if (offsets[r] < 0 || offsets[r + 1] < offsets[r])
      throw Napi::TypeError::New(env, path + ".penaltyOffsets must not decrease (row " + std::to_string(r) + ")");
    s.penaltyStart = offsets[r];
    s.penaltyCount = offsets[r + 1] - offsets[r];
  }
  return in;
}

}  // namespace mixattn::js
