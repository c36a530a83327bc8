// gem-client: command-line client of gem-server (see README.md).
//
//   gem-client [--server HOST:PORT] [--tls-ca CA.pem [--tls-cert C.pem --tls-key K.pem]]
//              [--inference-token TOKEN] COMMAND ...   (the options may also follow COMMAND)
//   gem-client models
//   gem-client classify --model M [--variant V] [--routing-key K] [--top-k K] IMAGE.png|IMAGE.jpg
//   gem-client generate --model M [--variant V] [--routing-key K] [--max-tokens N] [--temperature T]
//              [--top-k K] [--top-p P] [--seed S] [--stop STR]... "PROMPT"
//   gem-client compare --model M [--variants a,b,...] (IMAGE | --prompt "PROMPT")
//              [--top-k K] [--max-tokens N] [--json]
//   gem-client bench --model M [--variant V] [--concurrency C | --rate R [--seed S]
//              [--max-in-flight N]] [--duration 10s] [--drain 5s] [--image IMAGE]
//              [--prompt P] [--max-tokens N] [--routing-keys N] [--json]
//       Closed loop (default --concurrency 1): C clients, one request in flight each.
//       Open loop (--rate R): Poisson arrivals at R req/s (seeded, default seed 1), latency
//       counted from each request's scheduled send time, at most N (default 4096) in
//       flight. Progress on stderr once a second; errors counted by status code, the
//       first message of each code printed; stops early (exit 1) when every request fails.
//       --json prints one object (DESIGN.md "gem-client bench --json"). See
//       client/load_generator.h.
//   gem-client report [--metrics http://127.0.0.1:9464/metrics] [--watch [SECONDS]] [--json]
//   gem-client activations --model M [--metrics http://127.0.0.1:9464/metrics] [--json]
//   gem-client split --model M gelu=50,gem-n1=50 [--token T]
//   gem-client experiments [--model M] [--json] [--token T]
//   gem-client feedback --request-id ID (--label K | --reward R)
//   gem-client tokenize --vocab vocab.json --merges merges.txt "TEXT"
//
// Admin commands (split, experiments) send "authorization: Bearer T" when a token is
// given by --token or the environment variable GEMSERVE_ADMIN_TOKEN.
//
//   gem-client health [--service NAME]       exit 0 when the server is SERVING
//
// Exit codes: 0 success, 1 the server answered with an error (printed as
// "gem-client: CODE: message"), 2 bad usage or unreadable input, 3 the server cannot be
// reached (no connection within --connect-timeout, default 5 s; a hint is printed).

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "client/activations_command.h"
#include "client/cli_common.h"
#include "client/compare_command.h"
#include "client/connection.h"
#include "client/experiment_commands.h"
#include "client/health_command.h"
#include "client/load_generator.h"
#include "client/report.h"
#include "gemserve/v1/inference.grpc.pb.h"
#include "server/engine/text/tokenizer.h"

namespace {

using gemserve::client::Fail;
using gemserve::v1::Inference;

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

// ", request_id ID" for the key of `gem-client feedback`; "" when the server sent none.
std::string RequestNote(const std::string& request_id) {
  return request_id.empty() ? "" : ", request_id " + request_id;
}

// ", experiment version N" when an experiment routed the request.
std::string ExperimentNote(uint64_t version) {
  return version == 0 ? "" : ", experiment version " + std::to_string(version);
}

struct ClassifyArgs {
  std::string model, variant, routing_key, image;
  int top_k = 5;
};

int Classify(Inference::Stub& stub, const ClassifyArgs& args) {
  gemserve::v1::ClassifyRequest request;
  if (!gemserve::client::ReadFileBytes(args.image, request.mutable_image())) {
    return gemserve::client::UsageError("cannot read " + args.image);
  }
  request.set_model(args.model);
  request.set_variant(args.variant);
  request.set_routing_key(args.routing_key);
  request.set_top_k(args.top_k);
  grpc::ClientContext context;
  gemserve::v1::ClassifyResponse response;
  const grpc::Status status = stub.Classify(&context, request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << response.model() << "/" << response.variant() << " ("
            << response.timing().total_us() / 1000.0 << " ms" << RequestNote(response.request_id())
            << ExperimentNote(response.experiment_version()) << ")\n";
  for (const auto& p : response.predictions()) {
    std::cout << "  " << std::fixed << std::setprecision(4) << p.probability() << "  " << p.index()
              << "  " << p.label() << "\n";
  }
  return 0;
}

struct GenerateArgs {
  std::string model, variant, routing_key, prompt;
  int max_tokens = 0, top_k = 0;
  float temperature = 0, top_p = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

int Generate(Inference::Stub& stub, const GenerateArgs& args) {
  gemserve::v1::GenerateRequest request;
  request.set_model(args.model);
  request.set_variant(args.variant);
  request.set_routing_key(args.routing_key);
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
  bool echoed = false;  // the prompt is printed once the server has answered with text
  while (reader->Read(&piece)) {
    if (!echoed) std::cout << args.prompt;
    echoed = true;
    std::cout << piece.text() << std::flush;
    last = piece;
  }
  const grpc::Status status = reader->Finish();
  if (echoed) std::cout << "\n";
  if (!status.ok()) return Fail(status);
  std::cerr << "[" << last.variant() << ": "
            << gemserve::v1::FinishReason_Name(last.finish_reason()) << ", "
            << last.usage().prompt_tokens() << " prompt + " << last.usage().completion_tokens()
            << " new tokens, " << last.timing().total_us() / 1000.0 << " ms"
            << RequestNote(last.request_id()) << ExperimentNote(last.experiment_version()) << "]\n";
  return 0;
}

struct TokenizeArgs {
  std::string vocab, merges, text;
};

int Tokenize(const TokenizeArgs& args) {
  auto tokenizer = gemserve::Tokenizer::Load(args.vocab, args.merges);
  if (!tokenizer.ok()) {
    std::cerr << "gem-client: " << tokenizer.status().message() << "\n";
    return 2;
  }
  const std::vector<int32_t> ids = tokenizer.value().Encode(args.text);
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << "\n";
  return 0;
}

CLI::App* AddClassifyCommand(CLI::App& app, ClassifyArgs* args) {
  CLI::App* command = app.add_subcommand("classify", "classify a PNG or JPEG image");
  command->add_option("--model", args->model, "model name")->required();
  command->add_option("--variant", args->variant, "variant (default: routed)");
  command->add_option("--routing-key", args->routing_key, "sticky routing key, e.g. a user id");
  command->add_option("--top-k", args->top_k, "classes to show")->capture_default_str();
  command->add_option("image", args->image, "IMAGE.png or IMAGE.jpg")->required();
  return command;
}

CLI::App* AddGenerateCommand(CLI::App& app, GenerateArgs* args) {
  CLI::App* command = app.add_subcommand("generate", "stream a continuation of PROMPT");
  command->add_option("--model", args->model, "model name")->required();
  command->add_option("--variant", args->variant, "variant (default: routed)");
  command->add_option("--routing-key", args->routing_key, "sticky routing key, e.g. a user id");
  command->add_option("--max-tokens", args->max_tokens, "new tokens (0: server default)");
  command->add_option("--temperature", args->temperature, "0: greedy");
  command->add_option("--top-k", args->top_k, "0: off");
  command->add_option("--top-p", args->top_p, "0 or 1: off");
  command->add_option("--seed", args->seed, "sampling seed");
  command->add_option("--stop", args->stop, "stop string (repeatable)")
      ->allow_extra_args(false);  // one string per --stop; PROMPT stays the positional
  command->add_option("prompt", args->prompt, "the prompt")->required();
  return command;
}

CLI::App* AddBenchCommand(CLI::App& app, gemserve::client::BenchArgs* args) {
  CLI::App* command = app.add_subcommand("bench", "load the server and report latency per variant");
  command->add_option("--model", args->model, "model name")->required();
  command->add_option("--variant", args->variant, "variant (default: routed)");
  CLI::Option* concurrency =
      command->add_option("--concurrency", args->concurrency,
                          "closed loop: parallel clients, one request in flight each")
          ->capture_default_str()->check(CLI::PositiveNumber);
  CLI::Option* rate =
      command->add_option("--rate", args->rate,
                          "open loop: Poisson arrivals per second (latency from the scheduled "
                          "send time)")
          ->excludes(concurrency)
          ->check(CLI::Validator(
              [](std::string& text) -> std::string {
                double value = 0;
                if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) ||
                    value <= 0 || value > gemserve::client::kMaxBenchRate) {
                  return "--rate must be a number of requests per second, > 0 and at most 1e6";
                }
                return "";
              },
              "RATE"));
  command->add_option("--seed", args->seed, "open loop: seed of the arrival schedule")
      ->capture_default_str()->needs(rate);
  command->add_option("--max-in-flight", args->max_in_flight,
                      "open loop: most requests outstanding; later arrivals wait")
      ->capture_default_str()->check(CLI::PositiveNumber)->needs(rate);
  command->add_option("--duration", args->duration, "how long to send, e.g. 10s")
      ->capture_default_str();
  command->add_option("--drain", args->drain,
                      "then how long requests in flight may finish before they are cancelled")
      ->capture_default_str();
  command->add_option("--image", args->image, "PNG/JPEG to classify (classify models)");
  command->add_option("--prompt", args->prompt, "prompt (generate models)")->capture_default_str();
  command->add_option("--max-tokens", args->max_tokens, "new tokens per Generate")
      ->capture_default_str();
  command->add_option("--routing-keys", args->routing_keys,
                      "send routing keys key-0..key-(N-1) in turn (0: none)")
      ->capture_default_str()->check(CLI::Range(0, 1000000));
  command->add_flag("--json", args->json, "print one JSON object");
  return command;
}

CLI::App* AddTokenizeCommand(CLI::App& app, TokenizeArgs* args) {
  CLI::App* command = app.add_subcommand("tokenize", "print GPT-2 BPE token ids of TEXT");
  command->add_option("--vocab", args->vocab, "vocab.json")->required();
  command->add_option("--merges", args->merges, "merges.txt")->required();
  command->add_option("text", args->text, "the text")->required();
  return command;
}

// A command line with no command, an unknown command or arguments no command takes gets
// a message that says which, with the list of commands; kExitOk when it names a command.
int CheckCommandLine(const CLI::App& app) {
  using gemserve::client::kExitOk;
  using gemserve::client::kExitUsage;
  const std::vector<CLI::App*> commands = app.get_subcommands();
  const std::vector<std::string> extras = app.remaining();
  if (commands.empty() || !extras.empty()) {
    std::string known;
    for (const CLI::App* command : app.get_subcommands({})) {
      known += (known.empty() ? "" : ", ") + command->get_name();
    }
    if (commands.empty() && extras.empty()) {
      std::cerr << "gem-client: a command is required (" << known << "); see --help\n";
    } else if (commands.empty()) {
      std::cerr << "gem-client: unknown command \"" << extras.front() << "\" (commands: " << known
                << "); see --help\n";
    } else {
      std::cerr << "gem-client " << commands.front()->get_name() << ": unexpected argument \""
                << extras.front() << "\"; see gem-client " << commands.front()->get_name()
                << " --help\n";
    }
    return kExitUsage;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gemserve::client;
  CLI::App app{"gem-client: talks to gem-server"};
  app.require_subcommand(0, 1);  // none: told apart from an unknown one below
  app.fallthrough();  // lets --server come after the subcommand too
  Connection connection;
  AddConnectionOptions(app, &connection);

  CLI::App* models_cmd = app.add_subcommand("models", "list models and variants");
  ClassifyArgs classify;
  CLI::App* classify_cmd = AddClassifyCommand(app, &classify);
  GenerateArgs generate;
  CLI::App* generate_cmd = AddGenerateCommand(app, &generate);
  CompareArgs compare;
  CLI::App* compare_cmd = AddCompareCommand(app, &compare);
  BenchArgs bench;
  CLI::App* bench_cmd = AddBenchCommand(app, &bench);
  ReportArgs report;
  CLI::App* report_cmd = AddReportCommand(app, &report);
  ActivationsArgs activations;
  CLI::App* activations_cmd = AddActivationsCommand(app, &activations);
  SplitArgs split;
  CLI::App* split_cmd = AddSplitCommand(app, &split);
  ExperimentsArgs experiments;
  CLI::App* experiments_cmd = AddExperimentsCommand(app, &experiments);
  FeedbackArgs feedback;
  CLI::App* feedback_cmd = AddFeedbackCommand(app, &feedback);
  ReloadArgs reload;
  CLI::App* reload_cmd = AddReloadCommand(app, &reload);
  TokenizeArgs tokenize;
  CLI::App* tokenize_cmd = AddTokenizeCommand(app, &tokenize);
  HealthArgs health;
  CLI::App* health_cmd = AddHealthCommand(app, &health);
  // Set after the subcommands exist, so that they do not inherit it: arguments no
  // command knows end up in app.remaining(), and are reported below.
  app.allow_extras();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (const int usage = CheckCommandLine(app); usage != kExitOk) return usage;

  // Commands that need no gRPC channel.
  if (tokenize_cmd->parsed()) return Tokenize(tokenize);
  if (report_cmd->parsed()) return RunReport(report);
  if (activations_cmd->parsed()) return RunActivations(activations);
  auto channel = OpenChannel(connection);
  if (!channel) return kExitUsage;
  if (!ConnectOrExplain(*channel, connection)) return kExitUnreachable;
  if (health_cmd->parsed()) return RunHealth(channel, health);
  if (bench_cmd->parsed()) return RunBench(channel, connection.server, bench);

  auto inference = Inference::NewStub(channel);
  auto admin = gemserve::v1::Admin::NewStub(channel);
  if (models_cmd->parsed()) return ListModels(*inference);
  if (classify_cmd->parsed()) return Classify(*inference, classify);
  if (generate_cmd->parsed()) return Generate(*inference, generate);
  if (compare_cmd->parsed()) return RunCompare(*inference, compare);
  if (feedback_cmd->parsed()) return RunFeedback(*inference, feedback);
  if (split_cmd->parsed()) return RunSplit(*admin, split);
  if (experiments_cmd->parsed()) return RunExperiments(*admin, experiments);
  if (reload_cmd->parsed()) return RunReload(*admin, reload);
  return kExitUsage;  // not reached: CheckCommandLine saw a command
}
