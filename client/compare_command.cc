#include "client/compare_command.h"

#include <cstdio>
#include <iostream>

#include "client/cli_common.h"
#include "client/experiment_format.h"
#include "client/text_table.h"

namespace gemserve::client {
namespace {

constexpr size_t kShownCharacters = 60;

// `text` on one line ("\n" written as \n), cut to kShownCharacters characters
// (never inside a UTF-8 character) with "…" when longer.
std::string Shorten(const std::string& text) {
  std::string shown;
  size_t characters = 0;
  for (const char c : text) {
    const bool starts_character = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (starts_character && ++characters > kShownCharacters) return shown + "…";
    shown += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return shown;
}

// "Bag 0.9897", or "–" when there is no index-th prediction.
std::string PredictionCell(const v1::VariantResult& result, int index) {
  if (result.predictions_size() <= index) return "–";
  const v1::Prediction& p = result.predictions(index);
  char probability[16];
  std::snprintf(probability, sizeof probability, "%.4f", p.probability());
  return p.label() + " " + probability;
}

std::string InferenceMs(const v1::VariantResult& result) {
  return FormatMs(static_cast<double>(result.timing().inference_us()) / 1e3);
}

void PrintClassifyTable(const v1::CompareResponse& response) {
  TextTable table({"variant", "top-1", "top-2", ">inference ms"});
  for (const v1::VariantResult& r : response.results()) {
    table.AddRow({r.variant(), PredictionCell(r, 0), PredictionCell(r, 1), InferenceMs(r)});
  }
  table.Print(std::cout);
}

void PrintGenerateTable(const v1::CompareResponse& response) {
  TextTable table({"variant", ">inference ms", "continuation"});
  for (const v1::VariantResult& r : response.results()) {
    table.AddRow({r.variant(), InferenceMs(r), "\"" + Shorten(r.text()) + "\""});
  }
  table.Print(std::cout);
}

void PrintAgreement(const v1::CompareResponse& response, bool generate) {
  int agreeing = 0;
  for (const v1::PairAgreement& pair : response.pairs()) {
    std::cout << "  " << pair.a() << " vs " << pair.b() << ": "
              << (pair.agree() ? "agree" : "differ");
    if (generate) std::cout << ", common prefix " << pair.common_prefix();
    std::cout << "\n";
    agreeing += pair.agree();
  }
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, "%.3f", response.agreement());
  std::cout << "agreement: " << fraction << " (" << agreeing << " of " << response.pairs_size()
            << " pairs " << (generate ? "identical" : "agree on top-1") << ")\n";
}

// Fills the request from `args`; returns false (after printing why) on bad usage.
bool BuildRequest(const CompareArgs& args, v1::CompareRequest* request) {
  if (args.image.empty() == args.prompt.empty()) {
    UsageError("compare needs exactly one of IMAGE and --prompt");
    return false;
  }
  request->set_model(args.model);
  for (const std::string& variant : args.variants) request->add_variants(variant);
  request->set_top_k(args.top_k);
  request->set_max_new_tokens(args.max_tokens);
  if (!args.prompt.empty()) {
    request->set_prompt(args.prompt);
    return true;
  }
  if (!ReadFileBytes(args.image, request->mutable_image())) {
    UsageError("cannot read " + args.image);
    return false;
  }
  return true;
}

}  // namespace

CLI::App* AddCompareCommand(CLI::App& app, CompareArgs* args) {
  CLI::App* command = app.add_subcommand("compare", "run one input through several variants");
  command->add_option("--model", args->model, "model name")->required();
  command->add_option("--variants", args->variants, "comma-separated (default: all)")
      ->delimiter(',')
      ->allow_extra_args(false);  // so that IMAGE after it stays the positional
  command->add_option("image", args->image, "IMAGE.png or IMAGE.jpg (classify models)");
  command->add_option("--prompt", args->prompt, "prompt (generate models)");
  command->add_option("--top-k", args->top_k, "classes per variant (0: server default)");
  command->add_option("--max-tokens", args->max_tokens, "new tokens (0: server default)");
  command->add_flag("--json", args->json, "print the response as JSON");
  return command;
}

int RunCompare(v1::Inference::Stub& stub, const CompareArgs& args) {
  v1::CompareRequest request;
  if (!BuildRequest(args, &request)) return kExitUsage;
  grpc::ClientContext context;
  v1::CompareResponse response;
  const grpc::Status status = stub.Compare(&context, request, &response);
  if (!status.ok()) return Fail(status);
  if (args.json) return PrintMessageJson(response);
  const bool generate = !args.prompt.empty();
  std::cout << response.model() << ": " << response.results_size() << " variants\n";
  if (generate)
    PrintGenerateTable(response);
  else
    PrintClassifyTable(response);
  PrintAgreement(response, generate);
  return kExitOk;
}

}  // namespace gemserve::client
