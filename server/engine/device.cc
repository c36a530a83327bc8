#include "server/engine/device.h"

#include <torch/cuda.h>

namespace gemserve {

StatusOr<c10::Device> ParseDevice(const std::string& text) {
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      return Status::InvalidArgument("device " + text +
                                     ": this LibTorch has no CUDA or no GPU is visible; use "
                                     "--device cpu or auto");
    }
    int index = 0;
    if (text.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(text.substr(5), &used);
        if (used != text.size() - 5) throw std::invalid_argument(text);
      } catch (const std::exception&) {
        return Status::InvalidArgument("device " + text + ": expected cuda:N with N a number");
      }
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
      return Status::InvalidArgument("device " + text + ": only " +
                                     std::to_string(torch::cuda::device_count()) +
                                     " CUDA devices are visible");
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return Status::InvalidArgument("device must be cpu, cuda, cuda:N or auto, got \"" + text + "\"");
}

}  // namespace gemserve
