// Engine::Compare: one input through several variants' own queues, gathered into one
// answer with the pairwise agreement.

#include <mutex>

#include "server/engine/engine.h"
#include "server/engine/loaded_model.h"

namespace gemserve {

// Collects one output per variant from the workers; answers once all are in.
struct Engine::CompareGather {
  CompareGather(std::shared_ptr<const LoadedModel> version, std::vector<std::string> variants,
                Task model_task, std::function<void(StatusOr<CompareResult>)> on_done)
      : model(std::move(version)),
        task(model_task),
        remaining(variants.size()),
        done(std::move(on_done)) {
    for (std::string& v : variants) result.results.push_back({std::move(v), {}, {}, {}, {}});
  }

  void Set(size_t index, StatusOr<VariantOutput> output) {
    std::unique_lock<std::mutex> lock(mutex);
    if (output.ok()) {
      output->variant = result.results[index].variant;
      result.results[index] = std::move(output.value());
    } else if (error.ok()) {
      error = Status(output.status().code(),
                     result.results[index].variant + ": " + output.status().message());
    }
    if (--remaining > 0) return;
    lock.unlock();
    if (!error.ok()) return done(error);
    AddAgreement();
    done(std::move(result));
  }

  void AddAgreement() {
    const std::vector<VariantOutput>& r = result.results;
    int agreeing = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      for (size_t j = i + 1; j < r.size(); ++j) {
        PairAgreement pair{r[i].variant, r[j].variant, false, 0};
        if (task == Task::kClassify) {
          pair.agree = r[i].predictions.front().index == r[j].predictions.front().index;
        } else {
          const auto& a = r[i].token_ids;
          const auto& b = r[j].token_ids;
          pair.common_prefix = static_cast<int>(
              std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
          pair.agree = a == b;
        }
        agreeing += pair.agree;
        result.pairs.push_back(std::move(pair));
      }
    }
    result.agreement =
        result.pairs.empty() ? 1.0 : static_cast<double>(agreeing) / result.pairs.size();
  }

  const std::shared_ptr<const LoadedModel> model;  // held until answered (see Routing)
  const Task task;
  std::mutex mutex;
  size_t remaining;
  CompareResult result;
  Status error;
  std::function<void(StatusOr<CompareResult>)> done;
};

void Engine::Compare(const std::string& model_name, std::vector<std::string> variants,
                     CompareInput input, RequestContext context,
                     std::function<void(StatusOr<CompareResult>)> done) {
  const std::shared_ptr<const LoadedModel> found = FindModel(model_name);
  if (!found) return done(UnknownModel(model_name));
  const LoadedModel& model = *found;
  const bool wants_prompt = model.state.task == Task::kGenerate;
  if (wants_prompt != input.prompt.has_value()) {
    return done(Status::InvalidArgument(
        std::string("input: model \"") + model_name + "\" is a " + TaskName(model.state.task) +
        " model; give " + (wants_prompt ? "a prompt" : "a tensor or an image")));
  }
  if (input.top_k < 0) {
    return done(Status::InvalidArgument("top_k must be >= 0, got " + std::to_string(input.top_k)));
  }
  if (variants.empty()) {
    for (const VariantState& v : model.state.variants) {
      if (v.ready) variants.push_back(v.name);
    }
  }
  for (size_t i = 0; i < variants.size(); ++i) {
    if (Status valid = ValidateVariant(model.state, variants[i], "variants"); !valid.ok()) {
      return done(valid);
    }
    if (std::find(variants.begin(), variants.begin() + i, variants[i]) != variants.begin() + i) {
      return done(Status::InvalidArgument("variants: " + variants[i] + " is listed twice"));
    }
  }
  auto gather =
      std::make_shared<CompareGather>(found, variants, model.state.task, std::move(done));
  if (wants_prompt) {
    CompareGenerate(model, variants, input, context, gather);
  } else {
    CompareClassify(model, variants, input, context, gather);
  }
}

void Engine::CompareClassify(const LoadedModel& model, const std::vector<std::string>& variants,
                             const CompareInput& input, const RequestContext& context,
                             const std::shared_ptr<CompareGather>& gather) {
  const auto image = std::make_shared<const ClassifyInput>(input.image);
  for (size_t i = 0; i < variants.size(); ++i) {
    ClassifyRunner& runner = *model.classifiers.at(variants[i]);
    runner.Submit({image, input.top_k == 0 ? 5 : input.top_k, context,
                   [gather, i](StatusOr<ClassifyResult> result) {
                     if (!result.ok()) return gather->Set(i, result.status());
                     gather->Set(i, VariantOutput{"", std::move(result->predictions), "", {},
                                                  result->timing});
                   }});
  }
}

void Engine::CompareGenerate(const LoadedModel& model, const std::vector<std::string>& variants,
                             const CompareInput& input, const RequestContext& context,
                             const std::shared_ptr<CompareGather>& gather) {
  for (size_t i = 0; i < variants.size(); ++i) {
    GenerateRunner& runner = *model.generators.at(variants[i]);
    GenerateParams params;
    params.prompt = *input.prompt;
    params.max_new_tokens = input.max_new_tokens;  // greedy: default sampling params
    auto output = std::make_shared<VariantOutput>();
    GenerateSink sink{[gather, i, output](GenerateChunk chunk) {
                        output->text += chunk.text;
                        output->token_ids.insert(output->token_ids.end(), chunk.token_ids.begin(),
                                                 chunk.token_ids.end());
                        if (!chunk.finish) return;
                        output->timing = chunk.timing;
                        gather->Set(i, std::move(*output));
                      },
                      [gather, i](Status error) { gather->Set(i, std::move(error)); }};
    StatusOr<GenerateJob> job = PrepareGenerate(runner, std::move(params), context, std::move(sink));
    Status queued = job.ok() ? runner.Submit(std::move(job.value())) : job.status();
    if (!queued.ok()) gather->Set(i, std::move(queued));
  }
}

}  // namespace gemserve
