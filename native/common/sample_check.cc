#include "common/sample_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace mixattn {

namespace {
std::string show(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

void checkSampleInputs(const SampleRow* rows, int numRows, const int32_t* penalties,
                       size_t numPairs, int vocab, int topStride) {
  if (vocab < 1 || vocab > kMaxSampleVocab)
    throw Error("sample: vocab " + std::to_string(vocab) + " is outside [1, " +
                std::to_string(kMaxSampleVocab) + "]");
  if (numRows < 0) throw Error("sample: numRows must be >= 0");
  if (topStride < 0) throw Error("sample: topStride must be >= 0");
  std::vector<uint8_t> seen;
  for (int r = 0; r < numRows; ++r) {
    const SampleRow& p = rows[r];
    const std::string at = "sample: rows[" + std::to_string(r) + "].";
    auto bad = [&](const char* field, double v, const char* rule) {
      throw Error(at + field + " = " + show(v) + " must be " + rule);
    };
    if (!(p.uniform >= 0 && p.uniform < 1)) bad("uniform", p.uniform, "in [0, 1)");
    if (!(p.temperature >= 0 && std::isfinite(p.temperature)))
      bad("temperature", p.temperature, "a finite number >= 0");
    if (!(p.topP > 0 && p.topP <= 1)) bad("topP", p.topP, "in (0, 1]");
    if (!(p.minP >= 0 && p.minP <= 1)) bad("minP", p.minP, "in [0, 1]");
    if (!(p.repetitionPenalty > 0 && std::isfinite(p.repetitionPenalty)))
      bad("repetitionPenalty", p.repetitionPenalty, "a finite number > 0");
    if (!std::isfinite(p.presencePenalty)) bad("presencePenalty", p.presencePenalty, "finite");
    if (!std::isfinite(p.frequencyPenalty)) bad("frequencyPenalty", p.frequencyPenalty, "finite");
    if (p.topK < 0) bad("topK", p.topK, ">= 0");
    if (p.logprobs != 0 && p.logprobs != 1) bad("logprobs", p.logprobs, "0 or 1");
    if (p.topLogprobs < 0 || p.topLogprobs > kMaxTopLogprobs || p.topLogprobs > topStride)
      bad("topLogprobs", p.topLogprobs,
          ("in [0, " + std::to_string(std::min(kMaxTopLogprobs, topStride)) + "]").c_str());
    if (p.penaltyStart < 0 || p.penaltyCount < 0 ||
        size_t(p.penaltyStart) + size_t(p.penaltyCount) > numPairs)
      throw Error(at + "penalties [" + std::to_string(p.penaltyStart) + ", +" +
                  std::to_string(p.penaltyCount) + ") are outside the " +
                  std::to_string(numPairs) + " pairs given");
    if (p.penaltyCount == 0) continue;
    if (seen.empty()) seen.assign(size_t(vocab), 0);
    const int32_t* pair = penalties + 2 * size_t(p.penaltyStart);
    int j = 0;
    for (; j < p.penaltyCount; ++j) {
      const int32_t id = pair[2 * j], count = pair[2 * j + 1];
      std::string why;
      if (id < 0 || id >= vocab) why = "token id " + std::to_string(id) + " is outside [0, " + std::to_string(vocab) + ")";
      else if (count < 0) why = "count " + std::to_string(count) + " is negative";
      else if (seen[size_t(id)]) why = "token id " + std::to_string(id) + " appears twice";
      if (!why.empty()) {
        for (int i = 0; i < j; ++i) seen[size_t(pair[2 * i])] = 0;
        throw Error(at + "penalties[" + std::to_string(j) + "]: " + why);
      }
      seen[size_t(id)] = 1;
    }
    for (int i = 0; i < j; ++i) seen[size_t(pair[2 * i])] = 0;
  }
}

}  // namespace mixattn
