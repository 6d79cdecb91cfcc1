// runOp(backend, op, args): runs ONE backend op on host typed arrays (upload, run, download),
// on 'cpu' or 'cuda', so tests can compare each CUDA kernel with its CPU twin. Outputs are
// poisoned (all bytes 0xFF: NaN in f32 and bf16) before the op, so an element the op fails to
// write shows up. Activations go in and come out as Float32Array (rounded to the backend's
// activation dtype on the way in); weights are Float32Array ('f32') or Uint16Array ('bf16').
// See test/gpu/ops.ts for the argument objects of each op.
#pragma once

#include <napi.h>

namespace mixattn::js {
Napi::Value RunOp(const Napi::CallbackInfo& info);
}  // namespace mixattn::js
