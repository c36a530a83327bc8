#pragma once

// Decodes the two image formats Classify accepts, PNG (through libpng) and JPEG (through
// libjpeg-turbo), into 8-bit pixels, with the header checked against a pixel limit before
// any pixel is decoded or any pixel memory allocated. No LibTorch. Thread-safe (no shared
// state).

#include <cstdint>
#include <string_view>
#include <vector>

#include "server/engine/status.h"

namespace gemserve {

// Pixels of one decoded image.
struct DecodedImage {
  int64_t width = 0;                  // >= 1
  int64_t height = 0;                 // >= 1
  int channels = 0;                   // 1 (gray) or 3 (RGB)
  std::vector<unsigned char> pixels;  // row-major [height][width][channels], 0..255
};

// Decodes `encoded` into `channels` channels: 1 is grayscale by luminance, 3 is RGB.
//
// Accepted, by their first bytes, and nothing else:
//   PNG  (89 50 4E 47 0D 0A 1A 0A): any bit depth, colour type and interlacing, through
//        libpng's simplified API. Samples come out sRGB: a file's own gamma (gAMA chunk)
//        is converted, and 16-bit samples without one are taken as sRGB, like 8-bit
//        ones, then scaled to 8 bits (0x8080 -> 128). A palette is expanded. Alpha (an
//        alpha channel or tRNS) is composited onto black in linear light (half
//        transparent white -> 186). Colour to gray is libpng's sRGB luminance.
//   JPEG (FF D8 FF): baseline, progressive (at most 100 scans) or arithmetic coded, in
//        grayscale, YCbCr or RGB. Colour to gray is the luma (Y) channel. CMYK and YCCK
//        JPEGs are refused. Any libjpeg warning (corrupt or truncated data) is an error.
//
// Every failure is InvalidArgument with a message that starts with "image":
//   - neither signature (BMP, GIF, PNM, HDR, PSD, TGA, WebP, empty, ...): says only PNG and
//     JPEG are accepted and quotes at most the first 8 bytes, as hex;
//   - the header's width or height is 0, or width x height is above `max_pixels`: names
//     both dimensions and the limit. The PNG size comes from the IHDR chunk, which must
//     follow the signature; the JPEG size from its frame header. The libraries refuse,
//     with their own messages, a PNG side above 1,000,000 and a JPEG side of 0 or above
//     65500;
//   - truncated or corrupt data, or more than 100 JPEG scans: the library's message;
//   - `channels` other than 1 or 3.
//
// Memory: the result, width x height x channels <= max_pixels x channels bytes, plus
// the libraries' working memory: for PNG a few rows; for JPEG at most 6 bytes a pixel of
// max_pixels (a progressive JPEG keeps every coefficient until its last scan) plus
// 64 MiB, enforced through libjpeg's max_memory_to_use.
StatusOr<DecodedImage> DecodeImage(std::string_view encoded, int channels, int64_t max_pixels);

}  // namespace gemserve
