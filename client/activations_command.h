#pragma once

// gem-client activations: the activation telemetry of one model, per site and variant,
// from gem-server's /api/v1/activations (on the host of --metrics, as `report` reads).
//
//   gem-client activations --model M [--metrics http://127.0.0.1:9464/metrics] [--json]
//
// Prints a table, one row per activation site (network order), two columns per variant:
// the dead-unit ratio (units never non-zero over the window) and the mean zero fraction;
// "-" while the variant's window holds no sample; then each variant's window fill.
// --json prints the model's object of /api/v1/activations on one line instead.
// Exit 0; 1 when the URL cannot be read or the model has no telemetry (the message lists
// the models that have).

#include <CLI/CLI.hpp>
#include <string>

namespace gemserve::client {

struct ActivationsArgs {
  std::string model;
  std::string metrics_url = "http://127.0.0.1:9464/metrics";
  bool json = false;
};

CLI::App* AddActivationsCommand(CLI::App& app, ActivationsArgs* args);
int RunActivations(const ActivationsArgs& args);

}  // namespace gemserve::client
