#include "client/experiment_commands.h"

#include <iostream>

#include "client/cli_common.h"
#include "client/experiment_format.h"
#include "client/text_table.h"
#include "client/traffic_split.h"

namespace gemserve::client {
namespace {

void AddTokenOption(CLI::App* command, std::string* token) {
  command->add_option("--token", *token, "admin bearer token")->envname(kAdminTokenVariable);
}

}  // namespace

CLI::App* AddSplitCommand(CLI::App& app, SplitArgs* args) {
  CLI::App* command = app.add_subcommand("split", "set a model's traffic split (Admin)");
  command->add_option("--model", args->model, "model name")->required();
  command->add_option("split", args->split, "weights, e.g. gelu=50,gem-n1=50")->required();
  AddTokenOption(command, &args->token);
  return command;
}

int RunSplit(v1::Admin::Stub& stub, const SplitArgs& args) {
  std::map<std::string, uint32_t> split;
  std::string error;
  if (!ParseTrafficSplit(args.split, &split, &error)) return UsageError("bad split: " + error);
  v1::SetTrafficSplitRequest request;
  request.set_model(args.model);
  request.mutable_split()->insert(split.begin(), split.end());
  grpc::ClientContext context;
  AddBearerToken(&context, args.token);
  v1::Experiment experiment;
  const grpc::Status status = stub.SetTrafficSplit(&context, request, &experiment);
  if (!status.ok()) return Fail(status);
  std::cout << "now in force: ";
  PrintExperiment(std::cout, experiment);
  return kExitOk;
}

CLI::App* AddExperimentsCommand(CLI::App& app, ExperimentsArgs* args) {
  CLI::App* command = app.add_subcommand("experiments", "experiments and their statistics (Admin)");
  command->add_option("--model", args->model, "only this model's experiment");
  command->add_flag("--json", args->json, "print the answer as JSON");
  AddTokenOption(command, &args->token);
  return command;
}

int RunExperiments(v1::Admin::Stub& stub, const ExperimentsArgs& args) {
  v1::GetExperimentsRequest request;
  request.set_model(args.model);
  grpc::ClientContext context;
  AddBearerToken(&context, args.token);
  v1::GetExperimentsResponse response;
  const grpc::Status status = stub.GetExperiments(&context, request, &response);
  if (!status.ok()) return Fail(status);
  if (args.json) return PrintMessageJson(response);
  if (response.experiments_size() == 0) std::cout << "no experiments\n";
  for (int i = 0; i < response.experiments_size(); ++i) {
    if (i > 0) std::cout << "\n";
    PrintExperimentStatistics(std::cout, response.experiments(i));
  }
  return kExitOk;
}

CLI::App* AddFeedbackCommand(CLI::App& app, FeedbackArgs* args) {
  CLI::App* command =
      app.add_subcommand("feedback", "report the true outcome of an earlier request");
  command->add_option("--request-id", args->request_id, "request_id of the response")->required();
  auto set_label = [args](int label) {
    args->has_label = true;
    args->label = label;
  };
  auto set_reward = [args](double reward) {
    args->has_reward = true;
    args->reward = reward;
  };
  command->add_option_function<int>("--label", set_label, "the true class index (Classify)");
  command->add_option_function<double>("--reward", set_reward, "a reward in [0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  return command;
}

int RunFeedback(v1::Inference::Stub& stub, const FeedbackArgs& args) {
  if (args.has_label == args.has_reward) {
    return UsageError("feedback needs exactly one of --label K and --reward R");
  }
  v1::FeedbackRequest request;
  request.set_request_id(args.request_id);
  if (args.has_label)
    request.set_label(args.label);
  else
    request.set_reward(args.reward);
  grpc::ClientContext context;
  v1::FeedbackResponse response;
  const grpc::Status status = stub.Feedback(&context, request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << "credited " << response.model() << "/" << response.variant() << ": ";
  if (args.has_label)
    std::cout << (response.correct() ? "correct" : "incorrect") << "\n";
  else
    std::cout << "reward " << FormatNumber(args.reward) << "\n";
  return kExitOk;
}

CLI::App* AddReloadCommand(CLI::App& app, ReloadArgs* args) {
  CLI::App* command =
      app.add_subcommand("reload", "load what changed in the model repository (Admin)");
  command->add_flag("--json", args->json, "print the answer as JSON");
  AddTokenOption(command, &args->token);
  return command;
}

int RunReload(v1::Admin::Stub& stub, const ReloadArgs& args) {
  grpc::ClientContext context;
  AddBearerToken(&context, args.token);
  v1::ReloadModelsResponse response;
  const grpc::Status status = stub.ReloadModels(&context, v1::ReloadModelsRequest(), &response);
  if (!status.ok()) return Fail(status);
  if (args.json) {
    PrintMessageJson(response);
  } else {
    TextTable table({"model", "variant", "action", "error"});
    for (const v1::VariantReload& v : response.variants()) {
      std::string action = v1::ReloadAction_Name(v.action()).substr(sizeof("RELOAD_") - 1);
      if (v.kept_previous()) action += " (previous version serving)";
      table.AddRow({v.model(), v.variant(), action, v.error()});
    }
    table.Print(std::cout);
  }
  return response.failed() == 0 ? kExitOk : kExitServerError;
}

}  // namespace gemserve::client
