#include "server/engine/scripted_model.h"

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <algorithm>

namespace gemserve {

StatusOr<std::unique_ptr<ScriptedModel>> ScriptedModel::Load(const std::filesystem::path& path,
                                                             const c10::Device& device) {
  if (!std::filesystem::exists(path)) {
    return Status::NotFound("model file " + path.string() + " does not exist");
  }
  try {
    auto module = std::make_unique<torch::jit::Module>(torch::jit::load(path.string(), device));
    module->eval();
    return std::unique_ptr<ScriptedModel>(new ScriptedModel(std::move(module), device));
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("cannot load " + path.string() + ": " +
                                   e.what_without_backtrace());
  } catch (const std::exception& e) {  // what a damaged archive may also throw
    return Status::InvalidArgument("cannot load " + path.string() + ": " + e.what());
  }
}

StatusOr<std::vector<std::unique_ptr<ScriptedModel>>> ScriptedModel::LoadCopies(
    const std::filesystem::path& path, const c10::Device& device, int count) {
  std::vector<std::unique_ptr<ScriptedModel>> copies;
  while (static_cast<int>(copies.size()) < std::max(count, 1)) {
    StatusOr<std::unique_ptr<ScriptedModel>> copy = Load(path, device);
    if (!copy.ok()) return copy.status();
    copies.push_back(std::move(copy.value()));
  }
  return copies;
}

ScriptedModel::ScriptedModel(std::unique_ptr<torch::jit::Module> module, c10::Device device)
    : module_(std::move(module)), device_(device) {}

ScriptedModel::~ScriptedModel() = default;

int ScriptedModel::WarmupRuns() {
  return static_cast<int>(torch::jit::getNumProfiledRuns().load()) + 1;
}

at::Tensor ScriptedModel::Forward(const at::Tensor& input) {
  return module_->forward({input}).toTensor();
}

at::Tensor ScriptedModel::NewCache(int64_t rows) {
  return module_->get_method("new_cache")({rows}).toTensor();
}

std::pair<at::Tensor, at::Tensor> ScriptedModel::Prefill(const at::Tensor& tokens) {
  const auto result = module_->get_method("prefill")({tokens}).toTuple();
  return {result->elements()[0].toTensor(), result->elements()[1].toTensor()};
}

at::Tensor ScriptedModel::Decode(const at::Tensor& tokens, const at::Tensor& positions,
                                 at::Tensor& cache) {
  const auto result = module_->get_method("decode")({tokens, positions, cache}).toTuple();
  return result->elements()[0].toTensor();
}

}  // namespace gemserve
