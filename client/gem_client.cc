// gem-client: command-line client of gem-server (see README.md).
//
//   gem-client [--server HOST:PORT] models
//   gem-client classify --model M [--variant V] [--top-k K] IMAGE.png|IMAGE.jpg
//   gem-client generate --model M [--variant V] [--max-tokens N] [--temperature T]
//              [--top-k K] [--top-p P] [--seed S] [--stop STR]... "PROMPT"
//   gem-client tokenize --vocab vocab.json --merges merges.txt "TEXT"
//   gem-client bench --model M [--variant V] [--concurrency C] [--duration 10s] [--json]
//              [--image IMAGE] [--prompt P] [--max-tokens N]
//
// Exit codes: 0 success, 1 the server answered with an error (printed as
// "gem-client: CODE: message"), 2 bad usage or unreadable input.

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "gemserve/v1/inference.grpc.pb.h"
#include "client/load_generator.h"
#include "server/engine/text/tokenizer.h"

namespace {

using gemserve::v1::Inference;

int Fail(const grpc::Status& status) {
  static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                       "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                       "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int code = status.error_code();
  std::cerr << "gem-client: " << (code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN") << ": "
            << status.error_message() << "\n";
  return 1;
}

int ListModels(Inference::Stub& stub) {
  grpc::ClientContext context;
  gemserve::v1::ListModelsResponse response;
  const grpc::Status status = stub.ListModels(&context, {}, &response);
  if (!status.ok()) return Fail(status);
  for (const auto& model : response.models()) {
    std::cout << model.name() << " (" << model.task() << ", default variant: "
              << (model.default_variant().empty() ? "none" : model.default_variant()) << ")\n";
    for (const auto& v : model.variants()) {
      std::cout << "  " << std::left << std::setw(16) << v.name() << " " << std::setw(6)
                << v.state() << " " << v.activation() << " n=" << v.n() << " eps=" << v.eps()
                << " neg_slope=" << v.neg_slope() << "  " << v.quality();
      if (!v.error().empty()) std::cout << "  error: " << v.error();
      std::cout << "\n";
    }
  }
  return 0;
}

struct ClassifyArgs {
  std::string model, variant, image;
  int top_k = 5;
};

int Classify(Inference::Stub& stub, const ClassifyArgs& args) {
  std::ifstream in(args.image, std::ios::binary);
  if (!in) {
    std::cerr << "gem-client: cannot read " << args.image << "\n";
    return 2;
  }
  std::stringstream bytes;
  bytes << in.rdbuf();
  gemserve::v1::ClassifyRequest request;
  request.set_model(args.model);
  request.set_variant(args.variant);
  request.set_image(bytes.str());
  request.set_top_k(args.top_k);
  grpc::ClientContext context;
  gemserve::v1::ClassifyResponse response;
  const grpc::Status status = stub.Classify(&context, request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << response.model() << "/" << response.variant() << " ("
            << response.timing().total_us() / 1000.0 << " ms)\n";
  for (const auto& p : response.predictions()) {
    std::cout << "  " << std::fixed << std::setprecision(4) << p.probability() << "  " << p.index()
              << "  " << p.label() << "\n";
  }
  return 0;
}

struct GenerateArgs {
  std::string model, variant, prompt;
  int max_tokens = 0, top_k = 0;
  float temperature = 0, top_p = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

int Generate(Inference::Stub& stub, const GenerateArgs& args) {
  gemserve::v1::GenerateRequest request;
  request.set_model(args.model);
  request.set_variant(args.variant);
  request.set_prompt(args.prompt);
  request.set_max_new_tokens(args.max_tokens);
  request.set_temperature(args.temperature);
  request.set_top_k(args.top_k);
  request.set_top_p(args.top_p);
  request.set_seed(args.seed);
  for (const std::string& s : args.stop) request.add_stop(s);
  grpc::ClientContext context;
  auto reader = stub.Generate(&context, request);
  gemserve::v1::GenerateResponse piece;
  gemserve::v1::GenerateResponse last;
  std::cout << args.prompt << std::flush;
  while (reader->Read(&piece)) {
    std::cout << piece.text() << std::flush;
    last = piece;
  }
  const grpc::Status status = reader->Finish();
  std::cout << "\n";
  if (!status.ok()) return Fail(status);
  std::cerr << "[" << last.variant() << ": "
            << gemserve::v1::FinishReason_Name(last.finish_reason()) << ", "
            << last.usage().prompt_tokens() << " prompt + " << last.usage().completion_tokens()
            << " new tokens, " << last.timing().total_us() / 1000.0 << " ms]\n";
  return 0;
}

int Tokenize(const std::string& vocab, const std::string& merges, const std::string& text) {
  auto tokenizer = gemserve::Tokenizer::Load(vocab, merges);
  if (!tokenizer.ok()) {
    std::cerr << "gem-client: " << tokenizer.status().message() << "\n";
    return 2;
  }
  const std::vector<int32_t> ids = tokenizer.value().Encode(text);
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gem-client: talks to gem-server"};
  app.require_subcommand(1);
  std::string server = "127.0.0.1:50051";
  app.add_option("--server", server, "gem-server address HOST:PORT")->capture_default_str();

  CLI::App* models = app.add_subcommand("models", "list models and variants");

  ClassifyArgs classify;
  CLI::App* classify_cmd = app.add_subcommand("classify", "classify a PNG or JPEG image");
  classify_cmd->add_option("--model", classify.model, "model name")->required();
  classify_cmd->add_option("--variant", classify.variant, "variant (default: routed)");
  classify_cmd->add_option("--top-k", classify.top_k, "classes to show")->capture_default_str();
  classify_cmd->add_option("image", classify.image, "IMAGE.png or IMAGE.jpg")->required();

  GenerateArgs generate;
  CLI::App* generate_cmd = app.add_subcommand("generate", "stream a continuation of PROMPT");
  generate_cmd->add_option("--model", generate.model, "model name")->required();
  generate_cmd->add_option("--variant", generate.variant, "variant (default: routed)");
  generate_cmd->add_option("--max-tokens", generate.max_tokens, "new tokens (0: server default)");
  generate_cmd->add_option("--temperature", generate.temperature, "0: greedy");
  generate_cmd->add_option("--top-k", generate.top_k, "0: off");
  generate_cmd->add_option("--top-p", generate.top_p, "0 or 1: off");
  generate_cmd->add_option("--seed", generate.seed, "sampling seed");
  generate_cmd->add_option("--stop", generate.stop, "stop string (repeatable)");
  generate_cmd->add_option("prompt", generate.prompt, "the prompt")->required();

  gemserve::client::BenchArgs bench;
  CLI::App* bench_cmd = app.add_subcommand("bench", "load the server and report latency per variant");
  bench_cmd->add_option("--model", bench.model, "model name")->required();
  bench_cmd->add_option("--variant", bench.variant, "variant (default: routed)");
  bench_cmd->add_option("--concurrency", bench.concurrency, "parallel clients")
      ->capture_default_str()->check(CLI::PositiveNumber);
  bench_cmd->add_option("--duration", bench.duration, "how long, e.g. 10s")->capture_default_str();
  bench_cmd->add_option("--image", bench.image, "PNG/JPEG to classify (classify models)");
  bench_cmd->add_option("--prompt", bench.prompt, "prompt (generate models)")->capture_default_str();
  bench_cmd->add_option("--max-tokens", bench.max_tokens, "new tokens per Generate")
      ->capture_default_str();
  bench_cmd->add_flag("--json", bench.json, "print one JSON object");

  std::string vocab, merges, text;
  CLI::App* tokenize_cmd = app.add_subcommand("tokenize", "print GPT-2 BPE token ids of TEXT");
  tokenize_cmd->add_option("--vocab", vocab, "vocab.json")->required();
  tokenize_cmd->add_option("--merges", merges, "merges.txt")->required();
  tokenize_cmd->add_option("text", text, "the text")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (tokenize_cmd->parsed()) return Tokenize(vocab, merges, text);
  auto stub = Inference::NewStub(grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  if (models->parsed()) return ListModels(*stub);
  if (classify_cmd->parsed()) return Classify(*stub, classify);
  if (bench_cmd->parsed()) return gemserve::client::RunBench(server, bench);
  return Generate(*stub, generate);
}
