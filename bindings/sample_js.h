// Reading Backend::sample's rows from JS: the packed layout of lib/sampling/device.ts
// (packSampling), shared by NativeModel.forward and the ops binding.
#pragma once

#include <napi.h>

#include <string>

#include "model/runner.h"

namespace mixattn::js {

// o.params: Float64Array of `rows` x 10 (uniform, temperature, topK, topP, minP, repetition,
// presence, frequency, logprobs 0/1, topLogprobs); o.penalties: Int32Array of (id, count)
// pairs; o.penaltyOffsets: Int32Array of rows + 1 pair offsets. Throws a TypeError naming the
// field on a wrong shape or a non-integer count; value ranges are checkSampleInputs' job.
SampleInput sampleInputOf(const Napi::Object& o, const std::string& path, int rows);

}  // namespace mixattn::js
