// The error catalogue (docs/ERRORS.md) over real gRPC: every row's input gets its status
// code and a message naming the field, short and printable; after every row the server
// still answers a valid request. Requests go out as raw bytes (grpc::GenericStub), so
// rows can send what no generated stub would: garbage, invalid UTF-8, huge names.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "gemserve/v1/inference.grpc.pb.h"
#include "tests/integration/metrics_scrape.h"
#include "tests/integration/server_process.h"

namespace gemserve::testing {
namespace {

using Code = grpc::StatusCode;

constexpr char kClassifier[] = "resnet20-fashion";
constexpr char kGenerator[] = "gpt2-kjv";

// One catalogue row: `id` is the row's name in docs/ERRORS.md.
struct Row {
  std::string id;
  std::string method;   // e.g. "/gemserve.v1.Inference/Classify"
  std::string request;  // the serialized request bytes
  Code code;
  std::string message;  // a substring of the expected message
  std::chrono::milliseconds deadline{10000};
  grpc_compression_algorithm compression = GRPC_COMPRESS_NONE;  // how the request is sent
};

const std::string kClassify = "/gemserve.v1.Inference/Classify";
const std::string kGenerate = "/gemserve.v1.Inference/Generate";
const std::string kCompare = "/gemserve.v1.Inference/Compare";
const std::string kFeedback = "/gemserve.v1.Inference/Feedback";
const std::string kSetTrafficSplit = "/gemserve.v1.Admin/SetTrafficSplit";
const std::string kGetExperiments = "/gemserve.v1.Admin/GetExperiments";
const std::string kReloadModels = "/gemserve.v1.Admin/ReloadModels";

v1::Tensor Image28(float value) {
  v1::Tensor tensor;
  for (int64_t d : {1, 28, 28}) tensor.add_shape(d);
  tensor.mutable_data()->Resize(28 * 28, value);
  return tensor;
}

v1::ClassifyRequest ValidClassify() {
  v1::ClassifyRequest request;
  request.set_model(kClassifier);
  request.set_variant("gem-n1");
  *request.mutable_tensor() = Image28(0.5f);
  return request;
}

v1::GenerateRequest ValidGenerate() {
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant("gem-n2");
  request.set_prompt("And God said");
  request.set_max_new_tokens(4);
  return request;
}

template <typename Message>
Row Make(std::string id, const std::string& method, const Message& request, Code code,
         std::string message) {
  return {std::move(id), method, request.SerializeAsString(), code, std::move(message)};
}

Row Classify(std::string id, const std::function<void(v1::ClassifyRequest&)>& edit, Code code,
             std::string message) {
  v1::ClassifyRequest request = ValidClassify();
  edit(request);
  return Make(std::move(id), kClassify, request, code, std::move(message));
}

Row ClassifyImage(std::string id, const std::string& bytes, std::string message) {
  return Classify(std::move(id), [&](v1::ClassifyRequest& r) { r.set_image(bytes); },
                  Code::INVALID_ARGUMENT, std::move(message));
}

Row Generate(std::string id, const std::function<void(v1::GenerateRequest&)>& edit, Code code,
             std::string message) {
  v1::GenerateRequest request = ValidGenerate();
  edit(request);
  return Make(std::move(id), kGenerate, request, code, std::move(message));
}

// A string field (tag `field`) holding `bytes` as-is, which a stub would refuse to send
// when they are not UTF-8.
std::string RawStringField(int field, const std::string& bytes) {
  std::string out(1, static_cast<char>(field << 3 | 2));
  out += static_cast<char>(bytes.size());
  return out + bytes;
}

// PNG chunks and headers, built byte by byte (so that they can lie about their size).
std::string BigEndian32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string PngChunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const auto crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  return BigEndian32(static_cast<uint32_t>(data.size())) + body + BigEndian32(crc);
}

const std::string kPngSignature = "\x89PNG\r\n\x1a\n";

// A grey 8-bit PNG header claiming width x height, with one tiny IDAT and IEND.
std::string PngClaiming(uint32_t width, uint32_t height) {
  const std::string ihdr = BigEndian32(width) + BigEndian32(height) + std::string("\x08\x00\x00\x00\x00", 5);
  return kPngSignature + PngChunk("IHDR", ihdr) +
         PngChunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) +
         PngChunk("IEND", "");
}

// A baseline JPEG whose SOF0 claims width x height, with a scan header but no tables or
// data: the header parses, nothing after it decodes.
std::string JpegClaiming(uint16_t width, uint16_t height) {
  std::string sof = "\xff\xc0";
  sof += std::string("\x00\x0b\x08", 3);
  sof += {static_cast<char>(height >> 8), static_cast<char>(height),
          static_cast<char>(width >> 8), static_cast<char>(width)};
  sof += std::string("\x01\x01\x11\x00", 4);
  const std::string sos("\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00", 10);
  return std::string("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 20) +
         sof + sos + "\xff\xd9";
}

std::vector<Row> ClassifyRows() {
  const std::string huge(100000, 'm');
  return {
      Classify("classify-unknown-model", [](auto& r) { r.set_model("no-such-model"); },
               Code::NOT_FOUND, "unknown model \"no-such-model\""),
      Classify("classify-empty-model", [](auto& r) { r.set_model(""); }, Code::NOT_FOUND,
               "unknown model \"\""),
      Classify("classify-huge-model-name", [&](auto& r) { r.set_model(huge); }, Code::NOT_FOUND,
               "unknown model \"mmmm"),
      Classify("classify-control-characters-in-model", [](auto& r) { r.set_model("a\nb\x1b[2J"); },
               Code::NOT_FOUND, "unknown model \"a?b?[2J\""),
      Classify("classify-unknown-variant", [](auto& r) { r.set_variant("no-such"); },
               Code::NOT_FOUND, "has no variant \"no-such\""),
      Classify("classify-huge-variant-name", [&](auto& r) { r.set_variant(huge); },
               Code::NOT_FOUND, "has no variant"),
      Classify("classify-a-generate-model", [](auto& r) { r.set_model(kGenerator); },
               Code::INVALID_ARGUMENT, "is a generate model"),
      Classify("classify-long-routing-key", [&](auto& r) { r.set_routing_key(huge); },
               Code::INVALID_ARGUMENT, "routing_key"),
      Classify("classify-no-input", [](auto& r) { r.clear_input(); }, Code::INVALID_ARGUMENT,
               "input is empty"),
      Classify("classify-tensor-wrong-shape",
               [](auto& r) { r.mutable_tensor()->set_shape(1, 27); }, Code::INVALID_ARGUMENT,
               "tensor.shape must be [1,28,28]"),
      Classify("classify-tensor-huge-shape",
               [](auto& r) { r.mutable_tensor()->set_shape(1, int64_t{1} << 40); },
               Code::INVALID_ARGUMENT, "tensor.shape"),
      Classify("classify-tensor-negative-shape",
               [](auto& r) { r.mutable_tensor()->set_shape(1, -28); }, Code::INVALID_ARGUMENT,
               "tensor.shape"),
      Classify("classify-tensor-no-shape", [](auto& r) { r.mutable_tensor()->clear_shape(); },
               Code::INVALID_ARGUMENT, "tensor.shape"),
      Classify("classify-tensor-too-few-values",
               [](auto& r) { r.mutable_tensor()->mutable_data()->RemoveLast(); },
               Code::INVALID_ARGUMENT, "tensor.data has 783 values"),
      Classify("classify-tensor-nan",
               [](auto& r) { r.mutable_tensor()->set_data(3, std::nanf("")); },
               Code::INVALID_ARGUMENT, "tensor.data"),
      Classify("classify-tensor-infinity",
               [](auto& r) {
                 r.mutable_tensor()->set_data(3, std::numeric_limits<float>::infinity());
               },
               Code::INVALID_ARGUMENT, "tensor.data"),
      Classify("classify-tensor-overflows-when-normalised",
               [](auto& r) { r.mutable_tensor()->set_data(3, -3e38f); }, Code::INVALID_ARGUMENT,
               "tensor.data"),
      Classify("classify-negative-top-k", [](auto& r) { r.set_top_k(-1); },
               Code::INVALID_ARGUMENT, "top_k must be >= 0"),
      ClassifyImage("image-empty", "", "image is empty"),
      ClassifyImage("image-text", "definitely not a PNG", "only PNG and JPEG are accepted"),
      ClassifyImage("image-pnm-height-zero", "P5\n28 0\n255\n", "only PNG and JPEG are accepted"),
      ClassifyImage("image-hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x02\x02",
                    "only PNG and JPEG are accepted"),
      ClassifyImage("image-gif", "GIF89a\x01\x00\x01\x00\x00\x00\x00;", "only PNG and JPEG are accepted"),
      ClassifyImage("image-bmp", std::string("BM\x3a\x00\x00\x00", 6), "only PNG and JPEG are accepted"),
      ClassifyImage("image-png-signature-then-garbage", kPngSignature + "garbage!", "image"),
      ClassifyImage("image-png-20000-squared", PngClaiming(20000, 20000), "pixels"),
      ClassifyImage("image-png-zero-width", PngClaiming(0, 5), "image"),
      ClassifyImage("image-png-truncated", PngClaiming(28, 28).substr(0, 40), "image"),
      ClassifyImage("image-jpeg-31623-squared", JpegClaiming(31623, 31623), "pixels"),
      ClassifyImage("image-jpeg-no-data", JpegClaiming(28, 28), "image"),
      ClassifyImage("image-jpeg-signature-only", "\xff\xd8\xff", "image"),
  };
}

std::vector<Row> GenerateRows() {
  return {
      Generate("generate-unknown-model", [](auto& r) { r.set_model("nope"); }, Code::NOT_FOUND,
               "unknown model \"nope\""),
      Generate("generate-a-classify-model", [](auto& r) { r.set_model(kClassifier); },
               Code::INVALID_ARGUMENT, "is a classify model"),
      Generate("generate-unknown-variant", [](auto& r) { r.set_variant("nope"); },
               Code::NOT_FOUND, "has no variant \"nope\""),
      Generate("generate-prompt-too-many-tokens",
               [](auto& r) {
                 std::string prompt;
                 for (int i = 0; i < 400; ++i) prompt += " and";
                 r.set_prompt(prompt);
               },
               Code::INVALID_ARGUMENT, "prompt"),
      Generate("generate-prompt-a-megabyte", [](auto& r) { r.set_prompt(std::string(1 << 20, 'a')); },
               Code::INVALID_ARGUMENT, "prompt has 1048576 bytes"),
      Generate("generate-too-many-new-tokens", [](auto& r) { r.set_max_new_tokens(100000); },
               Code::INVALID_ARGUMENT, "max_new_tokens must be in [0, 256]"),
      Generate("generate-negative-new-tokens", [](auto& r) { r.set_max_new_tokens(-1); },
               Code::INVALID_ARGUMENT, "max_new_tokens"),
      Generate("generate-negative-temperature", [](auto& r) { r.set_temperature(-1); },
               Code::INVALID_ARGUMENT, "temperature"),
      Generate("generate-nan-temperature", [](auto& r) { r.set_temperature(std::nanf("")); },
               Code::INVALID_ARGUMENT, "temperature"),
      Generate("generate-infinite-temperature",
               [](auto& r) { r.set_temperature(std::numeric_limits<float>::infinity()); },
               Code::INVALID_ARGUMENT, "temperature"),
      Generate("generate-negative-top-k", [](auto& r) { r.set_top_k(-1); },
               Code::INVALID_ARGUMENT, "top_k"),
      Generate("generate-negative-top-p", [](auto& r) { r.set_top_p(-0.5f); },
               Code::INVALID_ARGUMENT, "top_p"),
      Generate("generate-top-p-above-one", [](auto& r) { r.set_top_p(1.5f); },
               Code::INVALID_ARGUMENT, "top_p"),
      Generate("generate-nan-top-p", [](auto& r) { r.set_top_p(std::nanf("")); },
               Code::INVALID_ARGUMENT, "top_p"),
      Generate("generate-too-many-stop-strings",
               [](auto& r) {
                 for (int i = 0; i < 1000; ++i) r.add_stop("s" + std::to_string(i));
               },
               Code::INVALID_ARGUMENT, "stop has 1000 strings; the limit is 16"),
      Generate("generate-long-stop-string", [](auto& r) { r.add_stop(std::string(10000, 'x')); },
               Code::INVALID_ARGUMENT, "has 10000 bytes; the limit is 256"),
      Generate("generate-empty-stop-string", [](auto& r) { r.add_stop(""); },
               Code::INVALID_ARGUMENT, "stop strings must not be empty"),
      Generate("generate-long-routing-key",
               [](auto& r) {
                 r.clear_variant();
                 r.set_routing_key(std::string(100000, 'k'));
               },
               Code::INVALID_ARGUMENT, "routing_key"),
  };
}

std::vector<Row> WireRows() {
  std::vector<Row> rows;
  for (const auto& [id, method, type] :
       {std::tuple{"wire-garbage-classify", kClassify, "ClassifyRequest"},
        std::tuple{"wire-garbage-generate", kGenerate, "GenerateRequest"},
        std::tuple{"wire-garbage-compare", kCompare, "CompareRequest"},
        std::tuple{"wire-garbage-feedback", kFeedback, "FeedbackRequest"},
        std::tuple{"wire-garbage-admin", kSetTrafficSplit, "SetTrafficSplitRequest"},
        std::tuple{"wire-garbage-reload", kReloadModels, "ReloadModelsRequest"}}) {
    rows.push_back({id, method, "\xff\xff\xff\xff garbage", Code::INVALID_ARGUMENT,
                    std::string("not a valid gemserve.v1.") + type});
  }
  rows.push_back({"wire-invalid-utf8-model", kClassify, RawStringField(1, "\xc3\x28\xff"),
                  Code::INVALID_ARGUMENT, "not a valid gemserve.v1.ClassifyRequest"});
  rows.push_back({"wire-invalid-utf8-prompt", kGenerate,
                  RawStringField(1, kGenerator) + RawStringField(4, "\xe2\x28\xa1"),
                  Code::INVALID_ARGUMENT, "not a valid gemserve.v1.GenerateRequest"});
  rows.push_back({"wire-unknown-method", "/gemserve.v1.Inference/Nope", "", Code::UNIMPLEMENTED, ""});
  Row big = Classify("wire-message-too-large",
                     [](auto& r) { r.set_image(std::string(5 << 20, 'x')); },
                     Code::RESOURCE_EXHAUSTED, "");
  rows.push_back(big);
  Row bomb = Classify("wire-gzip-bomb",
                      [](auto& r) { r.set_image(std::string(64 << 20, '\0')); },
                      Code::UNIMPLEMENTED, "Compression algorithm 'gzip' is disabled");
  bomb.compression = GRPC_COMPRESS_GZIP;
  rows.push_back(bomb);
  Row deflate = Make("wire-deflate-request", kClassify, ValidClassify(), Code::UNIMPLEMENTED,
                     "Compression algorithm 'deflate' is disabled");
  deflate.compression = GRPC_COMPRESS_DEFLATE;
  rows.push_back(deflate);
  Row late = Classify("classify-deadline-passed", [](auto&) {}, Code::DEADLINE_EXCEEDED, "");
  late.deadline = std::chrono::milliseconds(0);
  rows.push_back(late);
  return rows;
}

std::vector<Row> CompareFeedbackAdminRows() {
  v1::CompareRequest compare;
  compare.set_model(kClassifier);
  *compare.mutable_tensor() = Image28(0.5f);
  auto edit = [&](const std::function<void(v1::CompareRequest&)>& f) {
    v1::CompareRequest r = compare;
    f(r);
    return r;
  };
  v1::FeedbackRequest feedback;
  feedback.set_request_id("no-such-request");
  feedback.set_label(1);
  v1::SetTrafficSplitRequest split;
  split.set_model(kClassifier);
  (*split.mutable_split())["gelu"] = 1;
  auto edit_split = [&](const std::function<void(v1::SetTrafficSplitRequest&)>& f) {
    v1::SetTrafficSplitRequest r = split;
    f(r);
    return r;
  };
  v1::GetExperimentsRequest experiments;
  experiments.set_model("nope");
  return {
      Make("compare-unknown-model", kCompare, edit([](auto& r) { r.set_model("nope"); }),
           Code::NOT_FOUND, "unknown model \"nope\""),
      Make("compare-unknown-variant", kCompare, edit([](auto& r) { r.add_variants("nope"); }),
           Code::INVALID_ARGUMENT, "variants"),
      Make("compare-variant-twice", kCompare,
           edit([](auto& r) {
             r.add_variants("gelu");
             r.add_variants("gelu");
           }),
           Code::INVALID_ARGUMENT, "listed twice"),
      Make("compare-prompt-for-a-classify-model", kCompare,
           edit([](auto& r) { r.set_prompt("And God said"); }), Code::INVALID_ARGUMENT,
           "is a classify model; give a tensor or an image"),
      Make("compare-bad-tensor", kCompare,
           edit([](auto& r) { r.mutable_tensor()->set_shape(0, 3); }), Code::INVALID_ARGUMENT,
           "tensor.shape"),
      Make("feedback-unknown-request", kFeedback, feedback, Code::NOT_FOUND,
           "request_id \"no-such-request\""),
      Make("feedback-reward-above-one", kFeedback,
           [&] {
             v1::FeedbackRequest r = feedback;
             r.set_reward(1.5);
             return r;
           }(),
           Code::INVALID_ARGUMENT, "reward must be in [0, 1]"),
      Make("feedback-nan-reward", kFeedback,
           [&] {
             v1::FeedbackRequest r = feedback;
             r.set_reward(std::nan(""));
             return r;
           }(),
           Code::INVALID_ARGUMENT, "reward"),
      Make("split-unknown-variant", kSetTrafficSplit,
           edit_split([](auto& r) { (*r.mutable_split())["nope"] = 1; }), Code::INVALID_ARGUMENT,
           "nope"),
      Make("split-all-zero", kSetTrafficSplit,
           edit_split([](auto& r) { (*r.mutable_split())["gelu"] = 0; }), Code::INVALID_ARGUMENT,
           "every weight is 0"),
      Make("split-huge-weight", kSetTrafficSplit,
           edit_split([](auto& r) { (*r.mutable_split())["gelu"] = 4000000000u; }),
           Code::INVALID_ARGUMENT, "weight"),
      Make("split-model-without-experiment", kSetTrafficSplit,
           edit_split([](auto& r) { r.set_model(kGenerator); }), Code::INVALID_ARGUMENT,
           "has no experiment"),
      Make("experiments-unknown-model", kGetExperiments, experiments, Code::NOT_FOUND,
           "unknown model \"nope\""),
  };
}

std::vector<Row> Catalogue() {
  std::vector<Row> rows;
  for (auto part : {ClassifyRows(), GenerateRows(), WireRows(), CompareFeedbackAdminRows()}) {
    rows.insert(rows.end(), part.begin(), part.end());
  }
  return rows;
}

class ErrorCatalogueTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(GEM_SERVER_BINARY,
                                {"--config=" GEMSERVE_SOURCE_DIR "/deploy/gemserve.yaml",
                                 "--model-repository=" GEMSERVE_REPOSITORY});
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
  }

  // Sends `row` as a unary call of raw bytes; the status the server answered.
  static grpc::Status Send(const Row& row) {
    grpc::GenericStub stub(*channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + row.deadline);
    context.set_compression_algorithm(row.compression);
    grpc::ByteBuffer request(std::vector<grpc::Slice>{grpc::Slice(row.request)}.data(), 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, row.method, {}, &request, &response,
                   [&done](grpc::Status status) { done.set_value(std::move(status)); });
    return done.get_future().get();
  }

  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

ServerProcess* ErrorCatalogueTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ErrorCatalogueTest::channel_ = nullptr;

bool Printable(const std::string& text) {
  for (const unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

const char* CodeText(Code code) {
  switch (code) {
    case Code::OK: return "OK";
    case Code::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case Code::NOT_FOUND: return "NOT_FOUND";
    case Code::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case Code::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case Code::UNIMPLEMENTED: return "UNIMPLEMENTED";
    default: return "other";
  }
}

// With GEMSERVE_ERRORS_TABLE=PATH set, the rows as answered are written to PATH
// ("| `id` | CODE | message |"), the columns docs/ERRORS.md shows.
TEST_F(ErrorCatalogueTest, EveryRowGetsItsCodeAndAShortMessageAndTheServerGoesOn) {
  const Row valid = Make("valid", kClassify, ValidClassify(), Code::OK, "");
  const std::vector<Row> rows = Catalogue();
  const char* table_path = std::getenv("GEMSERVE_ERRORS_TABLE");
  std::ofstream table;
  if (table_path != nullptr) table.open(table_path);
  for (const Row& row : rows) {
    SCOPED_TRACE(row.id);
    const grpc::Status status = Send(row);
    table << "| `" << row.id << "` | " << CodeText(status.error_code()) << " | "
          << status.error_message() << " |\n";
    EXPECT_EQ(status.error_code(), row.code) << status.error_message();
    EXPECT_NE(status.error_message().find(row.message), std::string::npos)
        << status.error_message();
    EXPECT_LE(status.error_message().size(), 400u);
    EXPECT_TRUE(Printable(status.error_message())) << status.error_message();
    ASSERT_TRUE(Send(valid).ok()) << "the server stopped answering after " << row.id;
  }
  EXPECT_GE(rows.size(), 60u);
}

TEST_F(ErrorCatalogueTest, EveryRowIsInTheDocumentAndEveryDocumentedRowIsTested) {
  std::ifstream in(GEMSERVE_SOURCE_DIR "/docs/ERRORS.md");
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> documented;
  std::istringstream lines(text.str());
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| `", 0) == 0) documented.push_back(line.substr(3, line.find('`', 3) - 3));
  }
  std::vector<std::string> tested;
  for (const Row& row : Catalogue()) tested.push_back(row.id);
  std::sort(documented.begin(), documented.end());
  std::sort(tested.begin(), tested.end());
  EXPECT_EQ(documented, tested);
}

// gRPC 1.51 inflates a compressed message in full before checking the size limit, so a
// gzip request of zeros costs the server what it inflates to unless it is refused first.
TEST_F(ErrorCatalogueTest, ACompressedRequestIsRefusedBeforeItIsInflated) {
  Row bomb = Classify("bomb", [](auto& r) { r.set_image(std::string(256 << 20, '\0')); },
                      Code::UNIMPLEMENTED, "");
  bomb.compression = GRPC_COMPRESS_GZIP;
  const double before = Scrape(*server_, "process_resident_memory_bytes", {});
  EXPECT_EQ(Send(bomb).error_code(), Code::UNIMPLEMENTED);
  const double after = Scrape(*server_, "process_resident_memory_bytes", {});
  EXPECT_LT(after - before, 64 << 20) << "RSS " << before << " -> " << after << " bytes";
}

TEST_F(ErrorCatalogueTest, TheLargestLegalTimeoutIsNotAnExpiredDeadline) {
  grpc::ClientContext context;
  // 100 years: gRPC sends it as a timeout near its largest ("99999999S"-class) values.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 100));
  v1::ClassifyResponse response;
  const grpc::Status status =
      v1::Inference::NewStub(*channel_)->Classify(&context, ValidClassify(), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace gemserve::testing
