#pragma once

// `gem-client compare`: one input through several variants of a model (Inference.Compare).

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "gemserve/v1/inference.grpc.pb.h"

namespace gemserve::client {

struct CompareArgs {
  std::string model;
  std::vector<std::string> variants;  // empty: every loaded variant
  std::string image;                  // classify models: PNG or JPEG file
  std::string prompt;                 // generate models: greedy continuation of it
  int top_k = 0;                      // 0: the server's default
  int max_tokens = 0;                 // 0: the server's default
  bool json = false;                  // print the response as JSON
};

// Registers `compare` and its options on `app`; returns the subcommand.
CLI::App* AddCompareCommand(CLI::App& app, CompareArgs* args);

// Sends the request and prints a table of the variants' answers and their agreement.
// Returns 0, 1 on a server error, 2 unless exactly one of image and prompt is given or
// when the image cannot be read.
int RunCompare(v1::Inference::Stub& stub, const CompareArgs& args);

}  // namespace gemserve::client
