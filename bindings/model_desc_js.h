#pragma once

#include <napi.h>

#include "model/model_desc.h"

namespace mixattn::js {
// Reads the description that lib/engine/native-desc.ts builds.
ModelDesc modelDescFromJs(const Napi::Object& o);
}  // namespace mixattn::js
