// Image decoding: PNG and JPEG only, the header checked against the pixel limit before
// any decoding, hostile bytes refused with InvalidArgument naming "image".

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including them

#include <jpeglib.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "server/engine/image_decode.h"

namespace gemserve {
namespace {

constexpr int64_t kPixels = 4 << 20;

// --- Encoders for the test images -----------------------------------------------------

void AppendTo(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<char*>(data), static_cast<size_t>(size));
}

std::string StbPng(const std::vector<unsigned char>& pixels, int width, int height, int channels) {
  std::string bytes;
  stbi_write_png_to_func(AppendTo, &bytes, width, height, channels, pixels.data(),
                         width * channels);
  return bytes;
}

std::string StbJpeg(const std::vector<unsigned char>& pixels, int width, int height,
                    int channels) {
  std::string bytes;
  stbi_write_jpg_to_func(AppendTo, &bytes, width, height, channels, pixels.data(), 95);
  return bytes;
}

std::vector<unsigned char> Noise(size_t size) {
  std::vector<unsigned char> pixels(size);
  uint32_t state = 12345;
  for (unsigned char& p : pixels) {
    state = state * 1103515245u + 12345u;
    p = static_cast<unsigned char>(state >> 24);
  }
  return pixels;
}

std::string BigEndian(uint32_t value) {
  return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
          static_cast<char>(value >> 8), static_cast<char>(value)};
}

// A PNG chunk: length, type, data and the CRC of type and data.
std::string Chunk(const std::string& type, const std::string& data) {
  const std::string covered = type + data;
  const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(covered.data()),
                          static_cast<uInt>(covered.size()));
  return BigEndian(static_cast<uint32_t>(data.size())) + covered +
         BigEndian(static_cast<uint32_t>(crc));
}

const std::string kPngSignature = "\x89PNG\r\n\x1a\n";

std::string Ihdr(uint32_t width, uint32_t height, int bit_depth, int colour_type) {
  std::string data = BigEndian(width) + BigEndian(height);
  data += {static_cast<char>(bit_depth), static_cast<char>(colour_type), 0, 0, 0};
  return Chunk("IHDR", data);
}

std::string Deflated(const std::string& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string compressed(size, '\0');
  compress(reinterpret_cast<Bytef*>(compressed.data()), &size,
           reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()));
  compressed.resize(size);
  return compressed;
}

// A whole PNG: `rows` are the raw scanlines (without filter bytes), `before_idat` any
// chunks between IHDR and IDAT (e.g. PLTE).
std::string Png(uint32_t width, int bit_depth, int colour_type,
                const std::vector<std::string>& rows, const std::string& before_idat = "") {
  std::string raw;
  for (const std::string& row : rows) raw += '\0' + row;  // filter type 0: none
  return kPngSignature + Ihdr(width, static_cast<uint32_t>(rows.size()), bit_depth, colour_type) +
         before_idat + Chunk("IDAT", Deflated(raw)) + Chunk("IEND", "");
}

// An 8 x 8 grayscale JPEG through libjpeg: progressive with `scans` scans when `scans` > 1,
// or in `colour_space` (JCS_CMYK: 4 components, all `value`).
std::string LibjpegJpeg(int scans, J_COLOR_SPACE colour_space = JCS_GRAYSCALE) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&cinfo, &out, &out_size);
  cinfo.image_width = 8;
  cinfo.image_height = 8;
  cinfo.input_components = colour_space == JCS_CMYK ? 4 : 1;
  cinfo.in_color_space = colour_space;
  jpeg_set_defaults(&cinfo);
  // One component, DC first and refined, then each AC coefficient on its own in two
  // successive-approximation scans: up to 2 + 2 x 63 = 128 valid scans.
  std::vector<jpeg_scan_info> script;
  script.push_back({1, {0}, 0, 0, 0, 1});
  script.push_back({1, {0}, 0, 0, 1, 0});
  for (int k = 1; k <= 63; ++k) script.push_back({1, {0}, k, k, 0, 1});
  for (int k = 1; k <= 63; ++k) script.push_back({1, {0}, k, k, 1, 0});
  if (scans > 1) {
    cinfo.scan_info = script.data();
    cinfo.num_scans = scans;
  }
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<unsigned char> row(8 * static_cast<size_t>(cinfo.input_components), 100);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW rows[] = {row.data()};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string bytes(reinterpret_cast<char*>(out), out_size);
  std::free(out);
  return bytes;
}

// --- Assertions -----------------------------------------------------------------------

// The message of the InvalidArgument that decoding `bytes` must give.
std::string Refusal(const std::string& bytes, int channels = 1, int64_t max_pixels = kPixels) {
  StatusOr<DecodedImage> decoded = DecodeImage(bytes, channels, max_pixels);
  if (decoded.ok()) return "accepted";
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decoded.status().message().rfind("image", 0), 0u) << decoded.status().message();
  return decoded.status().message();
}

#define EXPECT_REFUSED(bytes, text)                                           \
  do {                                                                        \
    const std::string message = Refusal(bytes);                               \
    EXPECT_NE(message.find(text), std::string::npos) << message;              \
  } while (0)

DecodedImage Decoded(const std::string& bytes, int channels, int64_t max_pixels = kPixels) {
  StatusOr<DecodedImage> decoded = DecodeImage(bytes, channels, max_pixels);
  EXPECT_TRUE(decoded.ok()) << decoded.status().message();
  return decoded.ok() ? std::move(decoded).value() : DecodedImage{};
}

// --- Other formats and too few bytes ----------------------------------------------------

TEST(ImageDecode, OtherFormatsAreRefusedByTheirFirstBytes) {
  const std::string only = "only PNG and JPEG are accepted";
  EXPECT_REFUSED(std::string("P5\n5 0\n255\n\n", 12), only);               // PGM, height 0
  EXPECT_REFUSED(std::string("P6\n1 1\n255\n\xff\x00\x00", 14), only);     // PPM
  EXPECT_REFUSED(std::string("BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0", 16), only);  // BMP
  EXPECT_REFUSED(std::string("GIF89a\x01\0\x01\0\x80\0\0", 13), only);      // GIF
  EXPECT_REFUSED(std::string("8BPS\0\x01\0\0\0\0\0\0\0\x03", 14), only);    // PSD
  EXPECT_REFUSED(std::string("\0\0\x02\0\0\0\0\0\0\0\0\0\x01\0\x01\0\x18\0", 18), only);  // TGA
  EXPECT_REFUSED("RIFF\x1a\0\0\0WEBPVP8L", only);                           // WebP
  EXPECT_REFUSED("GIF89a", "47 49 46 38 39 61");
}

TEST(ImageDecode, RefusalQuotesAtMostEightBytesAsHex) {
  const std::string hdr = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x02\x02\x00\x01";
  const std::string message = Refusal(hdr);
  EXPECT_NE(message.find("only PNG and JPEG are accepted"), std::string::npos) << message;
  EXPECT_NE(message.find("it starts 23 3f 52 41 44 49 41 4e"), std::string::npos) << message;
  EXPECT_EQ(message.find("23 3f 52 41 44 49 41 4e 43"), std::string::npos) << message;
  EXPECT_EQ(message.find("RADIANCE"), std::string::npos) << message;
}

TEST(ImageDecode, EmptyAndTinyInputsAreRefused) {
  EXPECT_EQ(Refusal(""), "image is empty: only PNG and JPEG are accepted");
  EXPECT_REFUSED(std::string("\x89"), "it starts 89");
  EXPECT_REFUSED(std::string(1, '\0'), "it starts 00");
  EXPECT_REFUSED(kPngSignature.substr(0, 7), "only PNG and JPEG");
  EXPECT_REFUSED(kPngSignature, "image is not a valid PNG: no IHDR chunk");
  EXPECT_REFUSED(std::string("\xff\xd8"), "only PNG and JPEG");
  EXPECT_REFUSED(std::string("\xff\xd8\xff"), "image is not a valid JPEG");
}

// --- PNG ----------------------------------------------------------------------------------

TEST(ImageDecode, PngSignatureThenGarbageIsRefused) {
  EXPECT_REFUSED(kPngSignature + "this is not a chunk at all, just words",
                 "image is not a valid PNG: no IHDR chunk");
  // A well-formed IHDR of bit depth 7, then garbage.
  EXPECT_REFUSED(kPngSignature + Ihdr(4, 4, 7, 0) + std::string(40, 'x'),
                 "image is not a valid PNG: Invalid IHDR data");
}

TEST(ImageDecode, PngSizeIsCheckedFromTheHeader) {
  // Only the signature and a valid IHDR: the size is refused before anything else is read.
  EXPECT_REFUSED(kPngSignature + Ihdr(0, 5, 8, 0),
                 "image is 0 x 5 pixels: must be at least 1 x 1 and at most 4194304 pixels");
  EXPECT_REFUSED(kPngSignature + Ihdr(5, 0, 8, 0), "image is 5 x 0 pixels");
  EXPECT_REFUSED(kPngSignature + Ihdr(20000, 20000, 8, 0),
                 "image is 20000 x 20000 pixels: must be at least 1 x 1 and at most 4194304");
  EXPECT_REFUSED(kPngSignature + Ihdr(0xffffffffu, 0xffffffffu, 8, 2),
                 "image is 4294967295 x 4294967295 pixels");
}

TEST(ImageDecode, TruncatedPngIsRefused) {
  const std::string png = StbPng(Noise(64 * 64), 64, 64, 1);
  ASSERT_EQ(Decoded(png, 1).pixels, Noise(64 * 64));
  EXPECT_REFUSED(png.substr(0, png.size() / 2), "image is not a valid PNG: read beyond end");
  EXPECT_REFUSED(png.substr(0, 40), "image is not a valid PNG: read beyond end");
}

TEST(ImageDecode, PngWithABadCrcIsRefused) {
  std::string png = StbPng(Noise(16 * 16), 16, 16, 1);
  std::string bad_ihdr_crc = png;
  bad_ihdr_crc[29] ^= 0x01;  // IHDR's CRC: bytes 29..32
  EXPECT_REFUSED(bad_ihdr_crc, "CRC error");
  std::string bad_idat_crc = png;
  bad_idat_crc[png.size() - 12 - 1] ^= 0x01;  // the last byte of IDAT's CRC, before IEND
  EXPECT_REFUSED(bad_idat_crc, "CRC error");
}

TEST(ImageDecode, SixteenBitPngIsScaledToEightBits) {
  // No gAMA chunk: samples are taken as sRGB, so 0x8080 / 65535 is 128 / 255.
  const std::string gray16 = Png(2, 16, 0, {std::string("\x80\x80\xff\xff", 4)});
  EXPECT_EQ(Decoded(gray16, 1).pixels, (std::vector<unsigned char>{128, 255}));
  const std::string rgb16 = Png(1, 16, 2, {std::string("\x00\x00\x80\x80\xff\xff", 6)});
  EXPECT_EQ(Decoded(rgb16, 3).pixels, (std::vector<unsigned char>{0, 128, 255}));
}

TEST(ImageDecode, AlphaIsCompositedOntoBlack) {
  // RGBA: opaque red, fully transparent white, half transparent white.
  const std::vector<unsigned char> rgba = {255, 0, 0, 255, 255, 255, 255, 0, 255, 255, 255, 128};
  const DecodedImage decoded = Decoded(StbPng(rgba, 3, 1, 4), 3);
  ASSERT_EQ(decoded.pixels.size(), 9u);
  EXPECT_EQ(std::vector<unsigned char>(decoded.pixels.begin(), decoded.pixels.begin() + 6),
            (std::vector<unsigned char>{255, 0, 0, 0, 0, 0}));
  // Composited in linear light: half of white's light is sRGB 186, not 128.
  for (size_t i = 6; i < 9; ++i) EXPECT_NEAR(decoded.pixels[i], 186, 2) << i;
  // Gray and alpha, to a gray model.
  const std::vector<unsigned char> ga = {200, 255, 200, 0};
  EXPECT_EQ(Decoded(StbPng(ga, 2, 1, 2), 1).pixels, (std::vector<unsigned char>{200, 0}));
}

TEST(ImageDecode, PalettePngIsExpanded) {
  const std::string palette = Chunk("PLTE", std::string("\xff\x00\x00\x00\x00\xff", 6));
  const std::string png = Png(3, 8, 3, {std::string("\x00\x01\x00", 3)}, palette);
  EXPECT_EQ(Decoded(png, 3).pixels, (std::vector<unsigned char>{255, 0, 0, 0, 0, 255, 255, 0, 0}));
  const DecodedImage gray = Decoded(png, 1);
  ASSERT_EQ(gray.pixels.size(), 3u);
  EXPECT_GT(gray.pixels[0], gray.pixels[1]);  // red is brighter than blue
}

TEST(ImageDecode, PngColourConversion) {
  // RGB to gray: a uniform gray stays; pure colours follow luminance (green > red > blue).
  const std::vector<unsigned char> rgb = {90, 90, 90, 255, 0, 0, 0, 255, 0, 0, 0, 255};
  const DecodedImage gray = Decoded(StbPng(rgb, 4, 1, 3), 1);
  ASSERT_EQ(gray.channels, 1);
  ASSERT_EQ(gray.pixels.size(), 4u);
  EXPECT_NEAR(gray.pixels[0], 90, 1);
  EXPECT_GT(gray.pixels[2], gray.pixels[1]);
  EXPECT_GT(gray.pixels[1], gray.pixels[3]);
  // Gray to RGB: each value three times.
  const DecodedImage colour = Decoded(StbPng({10, 250}, 2, 1, 1), 3);
  EXPECT_EQ(colour.pixels, (std::vector<unsigned char>{10, 10, 10, 250, 250, 250}));
}

TEST(ImageDecode, InterlacedPngDecodes) {
  // Adam7 on 2 x 2: pass 1 holds (0,0), pass 6 holds (1,0), pass 7 holds row 1.
  const std::string ihdr = BigEndian(2) + BigEndian(2) + std::string("\x08\0\0\0\x01", 5);
  const std::string png = kPngSignature + Chunk("IHDR", ihdr) +
                          Chunk("IDAT", Deflated(std::string("\0\x01\0\x02\0\x03\x04", 7))) +
                          Chunk("IEND", "");
  EXPECT_EQ(Decoded(png, 1).pixels, (std::vector<unsigned char>{1, 2, 3, 4}));
}

// --- JPEG ---------------------------------------------------------------------------------

TEST(ImageDecode, JpegSizeIsCheckedFromTheFrameHeader) {
  // A real 8 x 8 JPEG whose frame header (SOF0) then claims 31623 x 31623.
  std::string jpeg = StbJpeg(Noise(8 * 8), 8, 8, 1);
  const size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  jpeg.replace(sof + 5, 4, std::string("\x7b\x87\x7b\x87", 4));
  EXPECT_REFUSED(jpeg, "image is 31623 x 31623 pixels: must be at least 1 x 1 and at most "
                       "4194304 pixels in all");
  jpeg.replace(sof + 5, 4, std::string("\x00\x00\x00\x08", 4));  // libjpeg refuses height 0
  EXPECT_REFUSED(jpeg, "image is not a valid JPEG: Empty JPEG image");
}

TEST(ImageDecode, TruncatedOrCorruptJpegIsRefused) {
  const std::string jpeg = StbJpeg(Noise(64 * 64), 64, 64, 1);
  EXPECT_TRUE(DecodeImage(jpeg, 1, kPixels).ok());
  EXPECT_REFUSED(jpeg.substr(0, jpeg.size() / 2), "image is not a valid JPEG: Premature end");
  EXPECT_REFUSED(jpeg.substr(0, 20), "image is not a valid JPEG: ");
  std::string corrupt = jpeg;
  const size_t scan = corrupt.find("\xff\xda");
  ASSERT_NE(scan, std::string::npos);
  corrupt.replace(scan + 40, 4, std::string("\xff\xd0\xff\xd9", 4));  // a bogus restart, EOI
  EXPECT_REFUSED(corrupt, "image is not a valid JPEG: Corrupt JPEG data");
}

TEST(ImageDecode, StbJpegDecodesClose) {
  const std::vector<unsigned char> rgb = {200, 30, 30};
  std::vector<unsigned char> pixels;
  for (int i = 0; i < 16 * 16; ++i) pixels.insert(pixels.end(), rgb.begin(), rgb.end());
  const DecodedImage colour = Decoded(StbJpeg(pixels, 16, 16, 3), 3);
  ASSERT_EQ(colour.width, 16);
  ASSERT_EQ(colour.height, 16);
  ASSERT_EQ(colour.pixels.size(), 16u * 16 * 3);
  for (size_t i = 0; i < colour.pixels.size(); ++i) {
    EXPECT_NEAR(colour.pixels[i], rgb[i % 3], 6) << i;
  }
  // The same image to a gray model: luma 0.299 R + 0.587 G + 0.114 B = 81.
  const DecodedImage gray = Decoded(StbJpeg(pixels, 16, 16, 3), 1);
  ASSERT_EQ(gray.pixels.size(), 16u * 16);
  for (unsigned char v : gray.pixels) EXPECT_NEAR(v, 81, 4);
}

TEST(ImageDecode, ProgressiveJpegIsLimitedTo100Scans) {
  for (int scans : {2, 100}) {
    const DecodedImage decoded = Decoded(LibjpegJpeg(scans), 1);
    ASSERT_EQ(decoded.pixels.size(), 64u) << scans;
    for (unsigned char v : decoded.pixels) EXPECT_NEAR(v, 100, 2) << scans;
  }
  EXPECT_REFUSED(LibjpegJpeg(101), "image is not a valid JPEG: more than 100 scans");
  EXPECT_REFUSED(LibjpegJpeg(128), "image is not a valid JPEG: more than 100 scans");
}

TEST(ImageDecode, CmykJpegIsRefused) {
  EXPECT_REFUSED(LibjpegJpeg(1, JCS_CMYK), "image is a CMYK JPEG");
  EXPECT_EQ(Decoded(LibjpegJpeg(1), 3).pixels.size(), 8u * 8 * 3);
}

// --- Limits -------------------------------------------------------------------------------

TEST(ImageDecode, MaxPixelsIsInclusive) {
  const std::string png = StbPng(Noise(30 * 20), 30, 20, 1);
  const std::string jpeg = StbJpeg(Noise(30 * 20), 30, 20, 1);
  for (const std::string& image : {png, jpeg}) {
    EXPECT_TRUE(DecodeImage(image, 1, 600).ok());
    StatusOr<DecodedImage> refused = DecodeImage(image, 1, 599);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(refused.status().message(),
              "image is 30 x 20 pixels: must be at least 1 x 1 and at most 599 pixels in all");
  }
}

TEST(ImageDecode, ImageOfExactlyMaxPixelsDecodesExactly) {
  const std::vector<unsigned char> pixels = Noise(1000 * 1000 * 3);
  const DecodedImage decoded = Decoded(StbPng(pixels, 1000, 1000, 3), 3, 1000000);
  EXPECT_EQ(decoded.width, 1000);
  EXPECT_EQ(decoded.height, 1000);
  EXPECT_EQ(decoded.pixels, pixels);
  const DecodedImage jpeg = Decoded(StbJpeg(pixels, 1000, 1000, 3), 3, 1000000);
  EXPECT_EQ(jpeg.pixels.size(), pixels.size());
}

TEST(ImageDecode, OnlyOneOrThreeChannels) {
  const std::string png = StbPng({1, 2, 3, 4}, 2, 2, 1);
  for (int channels : {0, 2, 4}) {
    StatusOr<DecodedImage> refused = DecodeImage(png, channels, kPixels);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("1 or 3 channels"), std::string::npos);
  }
}

}  // namespace
}  // namespace gemserve
