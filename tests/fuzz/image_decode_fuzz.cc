// Fuzz target: image decoding (server/engine/image_decode.h) and the model-input
// preprocessing after it (server/engine/image_input.h).
//
// Feeds: the input bytes as an encoded image — what a Classify request's `image` field
// carries — to DecodeImage for 3 and for 1 channels, under a budget of kMaxPixels; when
// decoding succeeds, also to ImageToModelInput for a 1 x 28 x 28 model (the demo ResNet's
// input, no resize unless the image differs) and a 3 x 16 x 24 one (always resized).
//
// Asserts, beyond no crash, leak or undefined behaviour:
//   - a decoded image is 1 x 1 or larger, width x height <= kMaxPixels, has the channels
//     asked for and exactly width x height x channels bytes of pixels;
//   - the 1- and 3-channel decodes agree: both succeed with the same size, or both fail;
//   - every failure is InvalidArgument with a message starting "image";
//   - a decoded image becomes a [C, H, W] model input of the model's shape whose values
//     all lie in [(0 - mean) / std, (1 - mean) / std].
// Seeds: tests/fuzz/corpus/image_decode (tests/fuzz/make_seeds.py).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/engine/image_decode.h"
#include "server/engine/image_input.h"
#include "tests/fuzz/fuzz_check.h"

namespace gemserve::fuzz {
namespace {

// A megapixel: big enough for every seed and for the header checks to matter (a mutated
// header easily claims more), small enough that a decode stays well under a second.
constexpr int64_t kMaxPixels = int64_t{1} << 20;

void CheckDecoded(const StatusOr<DecodedImage>& decoded, int channels) {
  if (!decoded.ok()) return CheckRefusal(decoded.status(), "image");
  const DecodedImage& image = decoded.value();
  FUZZ_CHECK(image.width >= 1 && image.height >= 1,
             std::to_string(image.width) + " x " + std::to_string(image.height));
  FUZZ_CHECK(image.width <= kMaxPixels / image.height,
             std::to_string(image.width) + " x " + std::to_string(image.height) +
                 " is above the pixel budget");
  FUZZ_CHECK(image.channels == channels, std::to_string(image.channels) + " channels");
  FUZZ_CHECK(image.pixels.size() == static_cast<size_t>(image.width * image.height * channels),
             std::to_string(image.pixels.size()) + " bytes of pixels");
}

void CheckModelInput(const std::string& encoded, const ImageSpec& spec) {
  const StatusOr<at::Tensor> input = ImageToModelInput(encoded, spec, kMaxPixels);
  FUZZ_CHECK(input.ok(), "an image that decodes must make a model input: " +
                             Describe(input.status()));
  const at::Tensor& tensor = input.value();
  FUZZ_CHECK(tensor.dim() == 3 && tensor.size(0) == spec.channels &&
                 tensor.size(1) == spec.height && tensor.size(2) == spec.width &&
                 tensor.is_contiguous() && tensor.scalar_type() == at::kFloat,
             "model input of the wrong shape or type");
  const float* values = tensor.data_ptr<float>();
  const int64_t plane = spec.height * spec.width;
  for (int64_t c = 0; c < spec.channels; ++c) {
    const float low = (0.0f - spec.mean[c]) / spec.std[c];
    const float high = (1.0f - spec.mean[c]) / spec.std[c];
    for (int64_t i = c * plane; i < (c + 1) * plane; ++i) {
      FUZZ_CHECK(std::isfinite(values[i]) && values[i] >= low - 1e-5f && values[i] <= high + 1e-5f,
                 "value " + std::to_string(values[i]) + " outside the normalised range");
    }
  }
}

}  // namespace
}  // namespace gemserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);  // as gem-server's workers run (threads: 1)
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemserve;
  using namespace gemserve::fuzz;
  const std::string encoded(reinterpret_cast<const char*>(data), size);

  const StatusOr<DecodedImage> rgb = DecodeImage(encoded, 3, kMaxPixels);
  CheckDecoded(rgb, 3);
  const StatusOr<DecodedImage> gray = DecodeImage(encoded, 1, kMaxPixels);
  CheckDecoded(gray, 1);
  FUZZ_CHECK(rgb.ok() == gray.ok(), "RGB decode " + Describe(rgb.status()) +
                                        "; gray decode " + Describe(gray.status()));
  if (!rgb.ok()) return 0;
  FUZZ_CHECK(rgb->width == gray->width && rgb->height == gray->height,
             "RGB and gray decodes differ in size");

  static const ImageSpec kResnetInput{1, 28, 28, {0.286f}, {0.353f}};
  static const ImageSpec kResizedRgb{3, 16, 24, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  CheckModelInput(encoded, kResnetInput);
  CheckModelInput(encoded, kResizedRgb);
  return 0;
}
