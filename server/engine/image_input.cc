#include "server/engine/image_input.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>

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
  return normalise(chw, spec);
}

StatusOr<at::Tensor> ImageToModelInput(const std::string& encoded, const ImageSpec& spec,
                                       int64_t max_pixels) {
  if (encoded.empty()) return Status::InvalidArgument("image is empty");
  if (encoded.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::InvalidArgument("image is too large");
  }
  if (spec.channels != 1 && spec.channels != 3) {
    return Status::InvalidArgument("image input needs a model with 1 or 3 channels");
  }
  int width = 0;
  int height = 0;
  int channels_in_file = 0;
  const auto channels = static_cast<int>(spec.channels);
  if (stbi_info_from_memory(reinterpret_cast<const unsigned char*>(encoded.data()),
                            static_cast<int>(encoded.size()), &width, &height,
                            &channels_in_file) &&
      (width <= 0 || height <= 0 || int64_t{width} * height > max_pixels)) {
    return Status::InvalidArgument("image is " + std::to_string(width) + "x" +
                                   std::to_string(height) + " pixels: must be at least 1x1 and "
                                   "at most " + std::to_string(max_pixels) + " pixels in all");
  }
  std::unique_ptr<unsigned char, decltype(&stbi_image_free)> decoded(
      stbi_load_from_memory(reinterpret_cast<const unsigned char*>(encoded.data()),
                            static_cast<int>(encoded.size()), &width, &height,
                            &channels_in_file, channels),
      &stbi_image_free);
  if (!decoded) {
    return Status::InvalidArgument(std::string("image could not be decoded as PNG or JPEG: ") +
                                   stbi_failure_reason());
  }
  if (width == spec.width && height == spec.height) {
    return normalise(planar_floats(decoded.get(), spec), spec);
  }
  std::vector<unsigned char> resized(static_cast<size_t>(spec.width * spec.height * channels));
  stbir_resize_uint8(decoded.get(), width, height, 0, resized.data(),
                     static_cast<int>(spec.width), static_cast<int>(spec.height), 0, channels);
  return normalise(planar_floats(resized.data(), spec), spec);
}

StatusOr<at::Tensor> ToModelInput(const ClassifyInput& input, const ImageSpec& spec,
                                  int64_t max_pixels) {
  if (input.pixels) return PixelsToModelInput(*input.pixels, spec);
  if (input.encoded_image) return ImageToModelInput(*input.encoded_image, spec, max_pixels);
  return Status::InvalidArgument("input is empty: set tensor or image");
}

}  // namespace gemserve
