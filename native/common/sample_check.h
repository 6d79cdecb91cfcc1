// Checks of Backend::sample's inputs, on host copies (the runner and the ops binding run them
// before uploading), so a bad row is the same clear Error on the CPU and the GPU and the CUDA
// kernel never scatters outside a row.
#pragma once

#include <cstddef>

#include "backend.h"

namespace mixattn {

// Throws Error("sample: rows[r].<field> ...") naming the first invalid row and field: vocab in
// [1, kMaxSampleVocab]; per row the ranges SampleRow documents, topLogprobs <= topStride, and
// penalty pairs inside [0, numPairs) with ids in [0, vocab), distinct, and counts >= 0.
void checkSampleInputs(const SampleRow* rows, int numRows, const int32_t* penalties,
                       size_t numPairs, int vocab, int topStride);

}  // namespace mixattn
