#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace mixattn::js {
// 'cpu' always; 'cuda' where it was built and a device answers. Throws Error otherwise.
std::unique_ptr<Backend> createBackend(const std::string& name, int threads);
}  // namespace mixattn::js
