#include "server/engine/image_input.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "server/engine/image_decode.h"

namespace gemserve {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << "]";
  return out.str();
}

// (x - mean[c]) / std[c] over a contiguous float [C, H, W] tensor.
at::Tensor normalise(at::Tensor chw, const ImageSpec& spec) {
  for (int64_t c = 0; c < spec.channels; ++c) {
    chw[c].sub_(spec.mean[c]).div_(spec.std[c]);
  }
  return chw;
}

// Interleaved 8-bit pixels [H, W, C] -> float [C, H, W] in [0, 1].
at::Tensor planar_floats(const unsigned char* pixels, const ImageSpec& spec) {
  auto out = at::empty({spec.channels, spec.height, spec.width}, at::kFloat);
  float* data = out.data_ptr<float>();
  const int64_t plane = spec.height * spec.width;
  for (int64_t i = 0; i < plane; ++i) {
    for (int64_t c = 0; c < spec.channels; ++c) {
      data[c * plane + i] = pixels[i * spec.channels + c] / 255.0f;
    }
  }
  return out;
}

// True when no value of the contiguous float tensor `t` is NaN or infinite.
bool all_finite(const at::Tensor& t) {
  const float* data = t.data_ptr<float>();
  return std::all_of(data, data + t.numel(), [](float v) { return std::isfinite(v); });
}

// The decoded pixels at the model's height and width: as they are when the sizes
// match, resized (stb_image_resize, both sizes >= 1) otherwise.
std::vector<unsigned char> resized_to_model(DecodedImage& image, const ImageSpec& spec) {
  if (image.width == spec.width && image.height == spec.height) return std::move(image.pixels);
  const int64_t size = spec.width * spec.height * image.channels;
  std::vector<unsigned char> resized(static_cast<size_t>(size));
  stbir_resize_uint8(image.pixels.data(), static_cast<int>(image.width),
                     static_cast<int>(image.height), 0, resized.data(), static_cast<int>(spec.width),
                     static_cast<int>(spec.height), 0, image.channels);
  return resized;
}

}  // namespace

StatusOr<at::Tensor> PixelsToModelInput(const PixelTensor& pixels, const ImageSpec& spec) {
  const std::vector<int64_t> expected = {spec.channels, spec.height, spec.width};
  std::vector<int64_t> shape = pixels.shape;
  if (shape.size() == 4 && shape[0] == 1) shape.erase(shape.begin());
  if (shape != expected) {
    return Status::InvalidArgument("tensor.shape must be " + shape_string(expected) +
                                   " or [1," + shape_string(expected).substr(1) + ", got " +
                                   shape_string(pixels.shape));
  }
  const auto count = static_cast<size_t>(spec.channels * spec.height * spec.width);
  if (pixels.data.size() != count) {
    return Status::InvalidArgument("tensor.data has " + std::to_string(pixels.data.size()) +
                                   " values but tensor.shape needs " + std::to_string(count));
  }
  for (float v : pixels.data) {
    if (!std::isfinite(v)) {
      return Status::InvalidArgument("tensor.data holds a NaN or infinite value");
    }
  }
  at::Tensor chw = at::from_blob(const_cast<float*>(pixels.data.data()), expected, at::kFloat)
                       .clone();
  at::Tensor input = normalise(chw, spec);
  if (!all_finite(input)) {
    return Status::InvalidArgument(
        "tensor.data gives a value that is not finite after normalisation ((x - mean) / std)");
  }
  return input;
}

StatusOr<at::Tensor> ImageToModelInput(const std::string& encoded, const ImageSpec& spec,
                                       int64_t max_pixels) {
  if (spec.channels != 1 && spec.channels != 3) {
    return Status::InvalidArgument("image input needs a model with 1 or 3 channels");
  }
  StatusOr<DecodedImage> image = DecodeImage(encoded, static_cast<int>(spec.channels), max_pixels);
  if (!image.ok()) return image.status();
  const std::vector<unsigned char> pixels = resized_to_model(image.value(), spec);
  at::Tensor input = normalise(planar_floats(pixels.data(), spec), spec);
  if (!all_finite(input)) {
    return Status::InvalidArgument(
        "image gives a value that is not finite after normalisation ((x - mean) / std)");
  }
  return input;
}

StatusOr<at::Tensor> ToModelInput(const ClassifyInput& input, const ImageSpec& spec,
                                  int64_t max_pixels) {
  if (input.pixels) return PixelsToModelInput(*input.pixels, spec);
  if (input.encoded_image) return ImageToModelInput(*input.encoded_image, spec, max_pixels);
  return Status::InvalidArgument("input is empty: set tensor or image");
}

}  // namespace gemserve
