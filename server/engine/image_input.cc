#include "server/engine/image_input.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>
#include <vector>

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

// The integer factor by which a side of `from` pixels is box-averaged before the resize
// to `to`: the largest that leaves at least twice `to` (1: none).
int64_t box_factor(int64_t from, int64_t to) { return std::max<int64_t>(1, from / (2 * to)); }

// `image` with each block of fx x fy pixels replaced by its mean (the blocks at the right
// and bottom edges may be smaller), in one pass over the pixels.
DecodedImage box_reduced(const DecodedImage& image, int64_t fx, int64_t fy) {
  const int64_t channels = image.channels;
  DecodedImage out;
  out.width = (image.width + fx - 1) / fx;
  out.height = (image.height + fy - 1) / fy;
  out.channels = image.channels;
  out.pixels.resize(static_cast<size_t>(out.width * out.height * channels));
  std::vector<uint64_t> sums(static_cast<size_t>(out.width * channels));
  for (int64_t oy = 0; oy < out.height; ++oy) {
    std::fill(sums.begin(), sums.end(), 0);
    const int64_t rows = std::min(fy, image.height - oy * fy);
    for (int64_t y = oy * fy; y < oy * fy + rows; ++y) {
      const unsigned char* row = image.pixels.data() + y * image.width * channels;
      for (int64_t ox = 0, x = 0; ox < out.width; ++ox) {
        uint64_t* sum = sums.data() + ox * channels;
        for (const int64_t end = std::min(x + fx, image.width); x < end; ++x) {
          for (int64_t c = 0; c < channels; ++c) sum[c] += row[x * channels + c];
        }
      }
    }
    for (int64_t ox = 0; ox < out.width; ++ox) {
      const auto count = static_cast<uint64_t>(std::min(fx, image.width - ox * fx) * rows);
      for (int64_t c = 0; c < channels; ++c) {
        out.pixels[(oy * out.width + ox) * channels + c] =
            static_cast<unsigned char>((sums[ox * channels + c] + count / 2) / count);
      }
    }
  }
  return out;
}

// The decoded pixels at the model's height and width: as they are when the sizes
// match, resized (stb_image_resize, both sizes >= 1) otherwise. A side more than 4x the
// model's is first box-averaged down to 2-3x it, so that the resize costs the same per
// pixel whatever the shape: stb_image_resize's cost grows with the number of rows, and a
// 1 x 1,000,000 strip took it 1.2 s where a 2048 x 2048 image took 0.17 s.
std::vector<unsigned char> resized_to_model(DecodedImage& image, const ImageSpec& spec) {
  if (image.width == spec.width && image.height == spec.height) return std::move(image.pixels);
  const int64_t fx = box_factor(image.width, spec.width);
  const int64_t fy = box_factor(image.height, spec.height);
  if (fx > 1 || fy > 1) image = box_reduced(image, fx, fy);
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
