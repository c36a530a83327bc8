#pragma once

// Parses the --device flag: "cpu", "cuda", "cuda:N" or "auto" (CUDA when this LibTorch
// has it and a GPU is visible, else CPU). InvalidArgument for anything else, or for
// a CUDA device this LibTorch cannot use.

#include <c10/core/Device.h>

#include <string>

#include "server/engine/status.h"

namespace gemserve {

StatusOr<c10::Device> ParseDevice(const std::string& text);

}  // namespace gemserve
