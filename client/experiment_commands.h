#pragma once

// The experiment and Admin commands of gem-client:
//   split        Admin.SetTrafficSplit: set a model's traffic split
//   experiments  Admin.GetExperiments: every experiment with its statistics
//   feedback     Inference.Feedback: the true outcome of an earlier request
//   reload       Admin.ReloadModels: what the reload did to each variant; exit code 1
//                when any failed
//
// Each has Add*Command, which registers the subcommand and its options on `app` and
// returns it, and Run*, which runs it once parsed and returns the exit code (0 ok,
// 1 server error, 2 bad usage).

#include <CLI/CLI.hpp>
#include <string>

#include "gemserve/v1/inference.grpc.pb.h"

namespace gemserve::client {

// Admin calls send "authorization: Bearer <token>" when a token is given, by --token
// or else the environment variable GEMSERVE_ADMIN_TOKEN.
constexpr char kAdminTokenVariable[] = "GEMSERVE_ADMIN_TOKEN";

struct SplitArgs {
  std::string model;
  std::string split;  // "gelu=50,gem-n1=50"
  std::string token;
};
CLI::App* AddSplitCommand(CLI::App& app, SplitArgs* args);
int RunSplit(v1::Admin::Stub& stub, const SplitArgs& args);

struct ExperimentsArgs {
  std::string model;  // empty: every experiment
  std::string token;
  bool json = false;
};
CLI::App* AddExperimentsCommand(CLI::App& app, ExperimentsArgs* args);
int RunExperiments(v1::Admin::Stub& stub, const ExperimentsArgs& args);

struct FeedbackArgs {
  std::string request_id;
  bool has_label = false;
  int label = 0;
  bool has_reward = false;
  double reward = 0;
};
CLI::App* AddFeedbackCommand(CLI::App& app, FeedbackArgs* args);
int RunFeedback(v1::Inference::Stub& stub, const FeedbackArgs& args);

struct ReloadArgs {
  std::string token;
  bool json = false;
};
CLI::App* AddReloadCommand(CLI::App& app, ReloadArgs* args);
int RunReload(v1::Admin::Stub& stub, const ReloadArgs& args);

}  // namespace gemserve::client
