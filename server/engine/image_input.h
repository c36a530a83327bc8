#pragma once

// Turns what a Classify request carries — a float tensor of pixels in [0, 1] or an
// encoded PNG/JPEG — into the model's normalised input [channels, height, width].
// Thread-safe (no shared state).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/status.h"

namespace gemserve {

// One image as floats, row-major, shape [C, H, W] or [1, C, H, W], values in [0, 1].
struct PixelTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Validates shape (must equal the model's [C, H, W], optionally with a leading 1),
// size and finiteness, then normalises. InvalidArgument naming "tensor.shape" or
// "tensor.data" otherwise.
StatusOr<at::Tensor> PixelsToModelInput(const PixelTensor& pixels, const ImageSpec& spec);

// Decodes PNG or JPEG bytes, converts to the model's channels (grayscale by luminance,
// or RGB), resizes to the model's height and width when they differ (bilinear), scales
// to [0, 1] and normalises. InvalidArgument naming "image" when the bytes cannot be
// decoded, or when the header's width x height is 0 or above `max_pixels` (checked
// before decoding).
StatusOr<at::Tensor> ImageToModelInput(const std::string& encoded, const ImageSpec& spec,
                                       int64_t max_pixels);

// A Classify input: pixels or an encoded image.
struct ClassifyInput {
  std::optional<PixelTensor> pixels;
  std::optional<std::string> encoded_image;
};

// Whichever of the two `input` holds, as above; InvalidArgument when it holds neither.
StatusOr<at::Tensor> ToModelInput(const ClassifyInput& input, const ImageSpec& spec,
                                  int64_t max_pixels);

}  // namespace gemserve
