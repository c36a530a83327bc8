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

// Validates shape (must equal the model's [C, H, W], optionally with a leading 1) and
// size, refuses NaN and infinite values, normalises ((x - mean) / std), then refuses a
// result that is not finite (a finite 3e38 can overflow). InvalidArgument naming
// "tensor.shape" or "tensor.data" otherwise.
StatusOr<at::Tensor> PixelsToModelInput(const PixelTensor& pixels, const ImageSpec& spec);

// Decodes an encoded image (DecodeImage in image_decode.h has the details) into the
// model's normalised input. Accepted, by signature, and nothing else: PNG (any bit depth,
// colour type or interlacing; 16-bit scaled to 8 bits, alpha composited onto black) and
// JPEG (baseline, progressive with at most 100 scans, or arithmetic; grayscale, YCbCr
// or RGB). Refused: every other format (BMP, GIF, PNM, HDR, PSD, TGA, ...), a header
// whose width or height is 0 or whose width x height is above `max_pixels` (checked
// before any pixel is decoded), truncated or corrupt data, CMYK JPEGs, and models with
// other than 1 or 3 channels. Then converts to the model's channels (1: grayscale by
// luminance, 3: RGB), resizes to the model's height and width when they differ
// (stb_image_resize's default filter, after averaging blocks of pixels down to 2-3x the
// model's size along a side more than 4x it, so that the work is linear in the pixels
// whatever the shape), scales to [0, 1], normalises and refuses a
// result that is not finite. Every failure is InvalidArgument starting with "image".
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
