#include "client/activations_command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client/cli_common.h"
#include "client/http_get.h"
#include "client/text_table.h"

namespace gemserve::client {
namespace {

using nlohmann::json;

std::string Fixed(const json& value) {
  if (!value.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", value.get<double>());
  return text;
}

// Every site of any variant, in the order the variants list them.
std::vector<std::pair<std::string, int64_t>> SiteRows(const json& variants) {
  std::vector<std::pair<std::string, int64_t>> rows;
  for (const json& variant : variants) {
    for (const json& site : variant["sites"]) {
      const std::string name = site["site"];
      const bool known = std::any_of(rows.begin(), rows.end(),
                                     [&](const auto& row) { return row.first == name; });
      if (!known) rows.emplace_back(name, site["units"].get<int64_t>());
    }
  }
  return rows;
}

const json* FindSite(const json& variant, const std::string& name) {
  for (const json& site : variant["sites"]) {
    if (site["site"] == name) return &site;
  }
  return nullptr;
}

// The model's entry of the document, or null.
const json* FindModel(const json& document, const std::string& model) {
  for (const json& entry : document["models"]) {
    if (entry["model"] == model) return &entry;
  }
  return nullptr;
}

std::string ModelList(const json& document) {
  std::string names;
  for (const json& entry : document["models"]) {
    names += (names.empty() ? "" : ", ") + entry["model"].get<std::string>();
  }
  return names.empty() ? "none" : names;
}

// The table of `model`, one entry of /api/v1/activations' "models".
void PrintTable(const json& model, std::ostream& out) {
  const json& variants = model["variants"];
  std::vector<std::string> headers{"site", ">units"};
  for (const json& variant : variants) {
    const std::string name = variant["variant"];
    headers.push_back(">" + name + " dead");
    headers.push_back(">" + name + " zero");
  }
  TextTable table(std::move(headers));
  for (const auto& [site, units] : SiteRows(variants)) {
    std::vector<std::string> cells{site, std::to_string(units)};
    for (const json& variant : variants) {
      const json* found = FindSite(variant, site);
      cells.push_back(found ? Fixed((*found)["dead_units_ratio"]) : "");
      cells.push_back(found ? Fixed((*found)["zero_fraction"]) : "");
    }
    table.AddRow(std::move(cells));
  }
  out << model["model"].get<std::string>()
      << ": dead = units never non-zero over the window / units, zero = mean fraction of "
         "outputs exactly 0\n";
  table.Print(out, "  ");
  out << "  samples in window:";
  for (const json& variant : variants) {
    out << " " << variant["variant"].get<std::string>() << " " << variant["samples"] << "/"
        << variant["window"];
  }
  out << "\n";
}

}  // namespace

CLI::App* AddActivationsCommand(CLI::App& app, ActivationsArgs* args) {
  CLI::App* command = app.add_subcommand(
      "activations", "activation telemetry of a model: dead units and zero fractions per site");
  command->add_option("--model", args->model, "model name")->required();
  command->add_option("--metrics", args->metrics_url,
                      "the server's /metrics URL (/api/v1/activations is read on its host)")
      ->capture_default_str();
  command->add_flag("--json", args->json, "print the model's JSON object");
  return command;
}

int RunActivations(const ActivationsArgs& args) {
  std::string origin, path, body, error;
  if (!SplitUrl(args.metrics_url, &origin, &path)) {
    return UsageError("--metrics: not an http:// URL: " + args.metrics_url);
  }
  if (!HttpGet(origin + "/api/v1/activations", &body, &error)) {
    std::cerr << "gem-client: " << error << "\n";
    return kExitServerError;
  }
  const json document = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object() || !document.contains("models")) {
    std::cerr << "gem-client: " << origin << "/api/v1/activations did not answer its JSON\n";
    return kExitServerError;
  }
  const json* model = FindModel(document, args.model);
  if (model == nullptr) {
    std::cerr << "gem-client: model \"" << args.model
              << "\" has no activation telemetry; models with telemetry: " << ModelList(document)
              << "\n";
    return kExitServerError;
  }
  if (args.json) {
    std::cout << model->dump() << "\n";
  } else {
    PrintTable(*model, std::cout);
  }
  return kExitOk;
}

}  // namespace gemserve::client
