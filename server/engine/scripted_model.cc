#include "server/engine/scripted_model.h"

#include <ATen/Context.h>
#include <torch/csrc/jit/ir/subgraph_matcher.h>
#include <torch/csrc/jit/passes/subgraph_rewrite.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <algorithm>

namespace gemserve {
namespace {

// A 2-D convolution of forward() whose weight is a float32 constant (a frozen model) and
// whose padding is a list of integers: the calls oneDNN's convolution takes as they are.
// (`pattern` names the rewrite pattern's values; `match` maps them to the graph's.)
bool OneDnnTakesConvolution(const torch::jit::Match& match,
                            const std::unordered_map<std::string, torch::jit::Value*>& pattern) {
  const auto matched = [&](const char* name) { return match.values_map.at(pattern.at(name)); };
  const c10::optional<c10::IValue> weight = torch::jit::toIValue(matched("weight"));
  return weight && weight->isTensor() && weight->toTensor().scalar_type() == at::kFloat &&
         matched("padding")->type()->isSubtypeOf(*c10::ListType::ofInts());
}

}  // namespace

void ScriptedModel::RouteConvolutionsThroughOneDnn(torch::jit::Module& module,
                                                   const c10::Device& device) {
  if (!device.is_cpu() || !at::hasMKLDNN() || !module.find_method("forward")) return;
  torch::jit::SubgraphRewriter rewriter;
  rewriter.RegisterRewritePattern(R"IR(
graph(%input, %weight, %bias, %stride, %padding, %dilation, %groups):
  %out = aten::conv2d(%input, %weight, %bias, %stride, %padding, %dilation, %groups)
  return (%out))IR",
                                  R"IR(
graph(%input, %weight, %bias, %stride, %padding, %dilation, %groups):
  %out = aten::mkldnn_convolution(%input, %weight, %bias, %padding, %stride, %dilation, %groups)
  return (%out))IR");
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
  rewriter.runOnGraph(graph, OneDnnTakesConvolution);
}

StatusOr<std::unique_ptr<ScriptedModel>> ScriptedModel::Load(const std::filesystem::path& path,
                                                             const c10::Device& device) {
  if (!std::filesystem::exists(path)) {
    return Status::NotFound("model file " + path.string() + " does not exist");
  }
  try {
    auto module = std::make_unique<torch::jit::Module>(torch::jit::load(path.string(), device));
    module->eval();
    RouteConvolutionsThroughOneDnn(*module, device);
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

namespace {

// A 0-d floating tensor's value; throws std::invalid_argument naming the field otherwise.
double Scalar(const c10::impl::GenericDict& stats, const char* field) {
  const auto it = stats.find(field);
  if (it == stats.end() || !it->value().isTensor()) {
    throw std::invalid_argument(std::string("no tensor \"") + field + "\"");
  }
  const at::Tensor value = it->value().toTensor();
  if (value.numel() != 1 || !value.is_floating_point()) {
    throw std::invalid_argument(std::string("\"") + field + "\" is not a floating scalar");
  }
  return value.to(at::kCPU).to(at::kDouble).item<double>();
}

SiteStatistics ParseSite(const c10::IValue& key, const c10::IValue& value) {
  if (!key.isString() || !value.isGenericDict()) {
    throw std::invalid_argument("the statistics are not a Dict[str, Dict[str, Tensor]]");
  }
  const std::string site = key.toStringRef();
  try {
    const c10::impl::GenericDict stats = value.toGenericDict();
    const auto mask = stats.find("nonzero");
    if (mask == stats.end() || !mask->value().isTensor() ||
        mask->value().toTensor().scalar_type() != at::kBool || mask->value().toTensor().dim() != 1) {
      throw std::invalid_argument("no bool [units] tensor \"nonzero\"");
    }
    return {site, Scalar(stats, "zero_fraction"), mask->value().toTensor().to(at::kCPU),
            Scalar(stats, "input_mean"), Scalar(stats, "input_std")};
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("site \"" + site + "\": " + e.what());
  }
}

}  // namespace

StatusOr<std::vector<SiteStatistics>> ScriptedModel::ActivationStatistics(
    const std::string& method, const at::Tensor& input) {
  const auto found = module_->find_method(method);
  if (!found) return Status::InvalidArgument("model.pt has no method " + method);
  try {
    const c10::IValue result = (*found)({input});
    if (!result.isTuple() || result.toTupleRef().elements().size() != 2 ||
        !result.toTupleRef().elements()[1].isGenericDict()) {
      return Status::InvalidArgument(method + " must return (output, Dict[str, Dict[str, Tensor]])");
    }
    std::vector<SiteStatistics> sites;
    for (const auto& entry : result.toTupleRef().elements()[1].toGenericDict()) {
      sites.push_back(ParseSite(entry.key(), entry.value()));
    }
    return sites;
  } catch (const std::invalid_argument& e) {
    return Status::InvalidArgument(method + ": " + e.what());
  } catch (const c10::Error& e) {
    return Status::Internal(method + " failed: " + e.what_without_backtrace());
  }
}

}  // namespace gemserve
