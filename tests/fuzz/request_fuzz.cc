// Fuzz target: request parsing and the validation gem-server applies to a Classify or
// Generate request before any model runs.
//
// Feeds: the input bytes as a raw gRPC message, to ParseRaw (server/grpc/raw_message.h)
// as a gemserve.v1.ClassifyRequest and as a gemserve.v1.GenerateRequest. A parsed
// ClassifyRequest goes through what the service and the engine do with its input:
// the ClassifyInput the service builds (the service's ImageInput, restated here: it is
// private to inference_service.cc), then ToModelInput for the demo ResNet's ImageSpec
// (models/repository/resnet20-fashion/gem-n1/model.json) under deploy/gemserve.yaml's
// limits.max_image_pixels. A parsed GenerateRequest goes through ValidateSamplingParams,
// a few Sampler draws, the demo GPT-2's tokenizer (models/repository/gpt2-kjv) on the
// prompt when it is within limits.max_prompt_tokens' byte bound, and the emit path of
// the generation loop: the prompt's tokens, one at a time, through Utf8StreamDecoder and
// a StopStringMatcher holding the request's stop strings (when within the limits).
// Engine-side checks that need a loaded model (routing, max_new_tokens, stop-string
// limits, top_k of Classify) live in engine.cc behind a model and are not reached.
//
// Asserts, beyond no crash, leak or undefined behaviour, and that nothing throws:
//   - bytes that do not parse get Unparseable<>: INVALID_ARGUMENT naming the message type;
//   - a Classify input becomes a [1, 28, 28] finite model input, or is refused with
//     InvalidArgument whose message names "tensor.shape", "tensor.data", "image" or
//     "input";
//   - sampling parameters are accepted or refused with InvalidArgument naming
//     "temperature", "top_k" or "top_p"; accepted ones draw ids in range that are never
//     a NaN or -inf logit;
//   - Decode(Encode(prompt)) == prompt, ids in range;
//   - the streamed, stop-filtered text is valid UTF-8; it stops at the first piece
//     after which the text fed so far holds a stop string, and equals the prompt cut
//     before the earliest stop string in that text (all of it when there is none).
// Seeds: tests/fuzz/corpus/request (serialized requests, tests/fuzz/make_seeds.py).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gemserve/v1/inference.pb.h"
#include "server/engine/image_input.h"
#include "server/engine/model_config.h"
#include "server/engine/text/sampler.h"
#include "server/engine/text/stop_strings.h"
#include "server/engine/text/tokenizer.h"
#include "server/engine/text/utf8_stream.h"
#include "server/grpc/raw_message.h"
#include "server/server_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace gemserve::fuzz {
namespace {

struct Setup {
  ImageSpec image;
  int64_t max_image_pixels = 0;
  GenerationLimits limits;
  const Tokenizer* tokenizer = nullptr;
};

Setup g_setup;

[[noreturn]] void Fail(const std::string& what, const Status& status) {
  std::fprintf(stderr, "request_fuzz: %s: %s\n", what.c_str(), status.message().c_str());
  std::exit(2);
}

// What InferenceService's ImageInput builds from a Classify request.
ClassifyInput ToClassifyInput(const v1::ClassifyRequest& request) {
  ClassifyInput input;
  if (request.has_tensor()) {
    input.pixels = PixelTensor{{request.tensor().shape().begin(), request.tensor().shape().end()},
                               {request.tensor().data().begin(), request.tensor().data().end()}};
  } else if (request.input_case() == v1::ClassifyRequest::kImage) {
    input.encoded_image = request.image();
  }
  return input;
}

bool StartsWithAny(const std::string& text, std::initializer_list<std::string_view> prefixes) {
  for (const std::string_view prefix : prefixes) {
    if (std::string_view(text).substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

void CheckClassify(const v1::ClassifyRequest& request) {
  const ImageSpec& spec = g_setup.image;
  const StatusOr<at::Tensor> input =
      ToModelInput(ToClassifyInput(request), spec, g_setup.max_image_pixels);
  if (!input.ok()) {
    FUZZ_CHECK(input.status().code() == StatusCode::kInvalidArgument, Describe(input.status()));
    FUZZ_CHECK(StartsWithAny(input.status().message(),
                             {"tensor.shape ", "tensor.data ", "image ", "input is empty"}),
               "the message names no field: " + input.status().message());
    return;
  }
  const at::Tensor& tensor = input.value();
  FUZZ_CHECK(tensor.dim() == 3 && tensor.size(0) == spec.channels &&
                 tensor.size(1) == spec.height && tensor.size(2) == spec.width &&
                 tensor.scalar_type() == at::kFloat && tensor.is_contiguous(),
             "model input of the wrong shape or type");
  const float* values = tensor.data_ptr<float>();
  for (int64_t i = 0; i < tensor.numel(); ++i) {
    FUZZ_CHECK(std::isfinite(values[i]), "a model input value is not finite");
  }
}

// Logits with the cases Sampler documents: NaN and -inf never drawn while another is
// left, +inf and FLT_MAX, ties, and ordinary values.
const std::vector<float>& Logits() {
  static const std::vector<float> logits = [] {
    std::vector<float> l = {std::numeric_limits<float>::quiet_NaN(), -INFINITY, INFINITY,
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                            0.0f, 0.0f, 1e-30f, -1e30f, 3.5f};
    for (int i = 0; i < 54; ++i) l.push_back(static_cast<float>((i * 37) % 23) * 0.25f - 2.0f);
    return l;
  }();
  return logits;
}

void CheckSampling(const v1::GenerateRequest& request) {
  const SamplingParams params{request.temperature(), request.top_k(), request.top_p(),
                              request.seed()};
  const Status valid = ValidateSamplingParams(params);
  if (!valid.ok()) {
    FUZZ_CHECK(valid.code() == StatusCode::kInvalidArgument, Describe(valid));
    FUZZ_CHECK(StartsWithAny(valid.message(), {"temperature ", "top_k ", "top_p "}),
               "the message names no field: " + valid.message());
    return;
  }
  Sampler sampler(params);
  const std::vector<float>& logits = Logits();
  for (int step = 0; step < 4; ++step) {
    const int32_t id = sampler.Sample(logits);
    FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < logits.size(), "id " + std::to_string(id));
    FUZZ_CHECK(!std::isnan(logits[id]) && logits[id] != -INFINITY,
               "drew logit " + std::to_string(logits[id]));
  }
}

// The request's stop strings when the engine would accept them (ValidateStopStrings in
// engine.cc: at most max_stop_strings, none empty, none above max_stop_bytes).
bool StopsWithinLimits(const v1::GenerateRequest& request) {
  if (request.stop_size() > g_setup.limits.max_stop_strings) return false;
  for (const std::string& stop : request.stop()) {
    if (stop.empty() || stop.size() > static_cast<size_t>(g_setup.limits.max_stop_bytes)) {
      return false;
    }
  }
  return true;
}

void CheckPromptAndStops(const v1::GenerateRequest& request) {
  const Tokenizer& tokenizer = *g_setup.tokenizer;
  const std::string& prompt = request.prompt();
  // PrepareGenerate's cheap bound: more bytes cannot fit in max_prompt_tokens.
  if (prompt.size() > static_cast<size_t>(g_setup.limits.max_prompt_tokens) *
                          tokenizer.longest_token_bytes()) {
    return;
  }
  const std::vector<int32_t> ids = tokenizer.Encode(prompt);
  for (const int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size(), "id " + std::to_string(id));
  }
  FUZZ_CHECK(tokenizer.Decode(ids) == prompt, "Decode(Encode(prompt)) != prompt");
  if (!StopsWithinLimits(request)) return;

  // The prompt's tokens as if generated, through the generation loop's emit path.
  const std::vector<std::string> stops(request.stop().begin(), request.stop().end());
  StopStringMatcher matcher(stops);
  Utf8StreamDecoder decoder;
  std::string released, fed;
  bool stopped = false;
  size_t first = std::string::npos;  // in `fed`, after the first piece that holds a stop
  for (size_t i = 0; i <= ids.size() && !stopped; ++i) {
    const std::string piece =
        i < ids.size() ? decoder.Feed(tokenizer.TokenBytes(ids[i])) : decoder.Flush();
    const StopStringMatcher::Output output = matcher.Feed(piece);
    FUZZ_CHECK(IsValidUtf8(output.text), "released text is not valid UTF-8");
    released += output.text;
    stopped = output.stopped;
    fed += piece;
    for (const std::string& stop : stops) first = std::min(first, fed.find(stop));
    FUZZ_CHECK(stopped == (first != std::string::npos),
               "stopped when the text so far holds no stop string, or not when it does");
  }
  if (!stopped) released += matcher.Flush();
  FUZZ_CHECK(released == prompt.substr(0, first),
             "released text is not the prompt up to the first stop string completed");
}

template <typename Message>
bool Parse(const grpc::ByteBuffer& raw, Message* message) {
  if (ParseRaw(raw, message)) return true;
  const grpc::Status refused = Unparseable<Message>();
  FUZZ_CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
                 refused.error_message().find(Message::descriptor()->full_name()) !=
                     std::string::npos,
             refused.error_message());
  return false;
}

}  // namespace
}  // namespace gemserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gemserve;
  using namespace gemserve::fuzz;
  at::set_num_threads(1);
  google::protobuf::SetLogHandler(nullptr);  // no log line per string that is not UTF-8
  const std::filesystem::path source = GEMSERVE_FUZZ_SOURCE_DIR;
  const StatusOr<ServerConfig> config = LoadServerConfig(source / "deploy" / "gemserve.yaml");
  if (!config.ok()) Fail("deploy/gemserve.yaml", config.status());
  g_setup.max_image_pixels = config->engine.max_image_pixels;
  g_setup.limits = config->engine.generation;
  const std::filesystem::path repository = source / "models" / "repository";
  const StatusOr<VariantConfig> resnet = LoadVariantConfig(repository / "resnet20-fashion" / "gem-n1");
  if (!resnet.ok()) Fail("resnet20-fashion/gem-n1", resnet.status());
  g_setup.image = resnet->image;
  const StatusOr<VariantConfig> gpt2 = LoadVariantConfig(repository / "gpt2-kjv" / "gem-n2");
  if (!gpt2.ok()) Fail("gpt2-kjv/gem-n2", gpt2.status());
  static StatusOr<Tokenizer> tokenizer = Tokenizer::Load(gpt2->tokenizer.vocab, gpt2->tokenizer.merges);
  if (!tokenizer.ok()) Fail("the gpt2-kjv tokenizer", tokenizer.status());
  g_setup.tokenizer = &tokenizer.value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemserve;
  using namespace gemserve::fuzz;
  grpc::Slice slice(data, size);
  const grpc::ByteBuffer raw(&slice, 1);

  v1::ClassifyRequest classify;
  if (Parse(raw, &classify)) CheckClassify(classify);

  v1::GenerateRequest generate;
  if (Parse(raw, &generate)) {
    CheckSampling(generate);
    CheckPromptAndStops(generate);
  }
  return 0;
}
