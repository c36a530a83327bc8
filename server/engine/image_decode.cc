#include "server/engine/image_decode.h"

#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including them

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

namespace gemserve {
namespace {

constexpr std::string_view kPngSignature = "\x89PNG\r\n\x1a\n";
constexpr std::string_view kJpegSignature = "\xff\xd8\xff";

// The documented libjpeg-turbo defence against scan-count denial of service: a
// progressive JPEG may hold thousands of scans, each a pass over every coefficient.
constexpr int kMostJpegScans = 100;
// A progressive or multi-scan JPEG keeps every DCT coefficient (2 bytes) of its 3
// components (CMYK is refused) until the last scan.
constexpr int64_t kJpegCoefficientBytesPerPixel = 6;
// Tables, strip buffers (at most 65500 pixels wide) and the padding of blocks to whole MCUs.
constexpr int64_t kJpegWorkingBytes = int64_t{64} << 20;

struct Dimensions {
  int64_t width = 0;
  int64_t height = 0;
};

std::string first_bytes_as_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : bytes.substr(0, 8)) {
    if (!out.empty()) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

Status neither_png_nor_jpeg(std::string_view bytes) {
  const std::string only = "only PNG and JPEG are accepted";
  if (bytes.empty()) return Status::InvalidArgument("image is empty: " + only);
  return Status::InvalidArgument("image is neither PNG nor JPEG (" + only + "): it starts " +
                                 first_bytes_as_hex(bytes));
}

// width x height compared by division, so that no product can overflow.
Status check_dimensions(Dimensions size, int64_t max_pixels) {
  if (size.width >= 1 && size.height >= 1 && size.width <= max_pixels / size.height) {
    return Status::Ok();
  }
  return Status::InvalidArgument("image is " + std::to_string(size.width) + " x " +
                                 std::to_string(size.height) + " pixels: must be at least 1 x 1 "
                                 "and at most " + std::to_string(max_pixels) + " pixels in all");
}

uint32_t big_endian_u32(std::string_view bytes, size_t at) {
  uint32_t value = 0;
  for (size_t i = at; i < at + 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

// The size in the IHDR chunk, which PNG requires right after the signature: length 13
// at offset 8, "IHDR" at 12, width at 16, height at 20. libpng reads the same chunk.
std::optional<Dimensions> png_header_dimensions(std::string_view bytes) {
  if (bytes.size() < 24 || big_endian_u32(bytes, 8) != 13 || bytes.substr(12, 4) != "IHDR") {
    return std::nullopt;
  }
  return Dimensions{big_endian_u32(bytes, 16), big_endian_u32(bytes, 20)};
}

// A png_image that is freed however decoding ends.
struct PngImage {
  PngImage() {
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
  }
  ~PngImage() { png_image_free(&image); }
  PngImage(const PngImage&) = delete;
  PngImage& operator=(const PngImage&) = delete;

  png_image image;
};

Status png_failure(const png_image& image) {
  return Status::InvalidArgument(std::string("image is not a valid PNG: ") + image.message);
}

StatusOr<DecodedImage> decode_png(std::string_view bytes, int channels, int64_t max_pixels) {
  const std::optional<Dimensions> size = png_header_dimensions(bytes);
  if (!size) {
    return Status::InvalidArgument("image is not a valid PNG: no IHDR chunk after the signature");
  }
  if (Status checked = check_dimensions(*size, max_pixels); !checked.ok()) return checked;
  PngImage png;
  if (!png_image_begin_read_from_memory(&png.image, bytes.data(), bytes.size())) {
    return png_failure(png.image);
  }
  png.image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png.image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  // png.image's width and height are *size: libpng refuses a PNG whose first chunk is
  // not that IHDR.
  DecodedImage decoded{png.image.width, png.image.height, channels, {}};
  decoded.pixels.resize(static_cast<size_t>(decoded.width * decoded.height * channels));
  static constexpr png_color kBlack{0, 0, 0};
  if (!png_image_finish_read(&png.image, &kBlack, decoded.pixels.data(), 0, nullptr)) {
    return png_failure(png.image);
  }
  return decoded;
}

// libjpeg's error manager, extended with where to jump on an error and what it said.
struct JpegErrors {
  jpeg_error_mgr manager;  // first, so that cinfo->err points at the whole struct
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void fail_jpeg(j_common_ptr cinfo, const char* message) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  std::snprintf(errors->message, sizeof errors->message, "%s", message);
  std::longjmp(errors->jump, 1);
}

[[noreturn]] void on_jpeg_error(j_common_ptr cinfo) {
  if (cinfo->err->msg_code == JERR_NO_BACKING_STORE) {
    fail_jpeg(cinfo, "decoding needs more memory than the pixel limit allows");
  }
  char message[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, message);
  fail_jpeg(cinfo, message);
}

// Level -1 is a warning (corrupt or truncated data): an error here. Levels >= 0 trace.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_jpeg_error(cinfo);
}

void stop_after_too_many_scans(j_common_ptr cinfo) {
  if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMostJpegScans) {
    char message[32];
    std::snprintf(message, sizeof message, "more than %d scans", kMostJpegScans);
    fail_jpeg(cinfo, message);
  }
}

// One libjpeg decompressor over `bytes`. Each step returns false once libjpeg has failed,
// with message() saying why; the setjmp in each step is where libjpeg's errors land, and
// no step holds an object with a destructor that the jump would skip.
class JpegDecoder {
 public:
  JpegDecoder(std::string_view bytes, int64_t max_pixels)
      : bytes_(bytes), max_pixels_(max_pixels) {
    cinfo_.err = jpeg_std_error(&errors_.manager);
    errors_.manager.error_exit = on_jpeg_error;
    errors_.manager.emit_message = on_jpeg_message;
    progress_.progress_monitor = stop_after_too_many_scans;
  }
  ~JpegDecoder() { jpeg_destroy_decompress(&cinfo_); }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  const char* message() const { return errors_.message; }
  Dimensions dimensions() const { return {cinfo_.image_width, cinfo_.image_height}; }
  bool is_cmyk() const {
    return cinfo_.jpeg_color_space == JCS_CMYK || cinfo_.jpeg_color_space == JCS_YCCK;
  }

  // Everything up to the first scan: tables and the frame header, no pixels.
  bool read_header() {
    if (setjmp(errors_.jump)) return false;
    jpeg_create_decompress(&cinfo_);
    cinfo_.progress = &progress_;
    cinfo_.mem->max_memory_to_use = memory_limit();
    jpeg_mem_src(&cinfo_, reinterpret_cast<const unsigned char*>(bytes_.data()),
                 static_cast<unsigned long>(bytes_.size()));
    jpeg_read_header(&cinfo_, TRUE);
    return true;
  }

  // Decodes every row into `pixels`, sized here to the output: dimensions() (libjpeg's
  // default scale is 1) x channels.
  bool read_pixels(int channels, std::vector<unsigned char>& pixels) {
    if (setjmp(errors_.jump)) return false;
    cinfo_.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo_);
    const size_t row_bytes = size_t{cinfo_.output_width} * cinfo_.output_components;
    pixels.resize(row_bytes * cinfo_.output_height);
    while (cinfo_.output_scanline < cinfo_.output_height) {
      JSAMPROW row = pixels.data() + row_bytes * cinfo_.output_scanline;
      // jpeg_mem_src never suspends, so each call reads one row or fails; the check
      // keeps a library surprise from becoming an endless loop.
      if (jpeg_read_scanlines(&cinfo_, &row, 1) != 1) fail_jpeg(common(), "a row is missing");
    }
    return true;
  }

 private:
  j_common_ptr common() { return reinterpret_cast<j_common_ptr>(&cinfo_); }

  // max_pixels x 6 bytes + 64 MiB, within what a long holds.
  long memory_limit() const {
    const int64_t most_pixels = (std::numeric_limits<long>::max() - kJpegWorkingBytes) /
                                kJpegCoefficientBytesPerPixel;
    const int64_t pixels = std::clamp<int64_t>(max_pixels_, 0, most_pixels);
    return static_cast<long>(pixels * kJpegCoefficientBytesPerPixel + kJpegWorkingBytes);
  }

  std::string_view bytes_;
  int64_t max_pixels_;
  JpegErrors errors_{};
  jpeg_progress_mgr progress_{};
  jpeg_decompress_struct cinfo_{};
};

Status jpeg_failure(const JpegDecoder& jpeg) {
  return Status::InvalidArgument(std::string("image is not a valid JPEG: ") + jpeg.message());
}

StatusOr<DecodedImage> decode_jpeg(std::string_view bytes, int channels, int64_t max_pixels) {
  JpegDecoder jpeg(bytes, max_pixels);
  if (!jpeg.read_header()) return jpeg_failure(jpeg);
  const Dimensions size = jpeg.dimensions();
  if (Status checked = check_dimensions(size, max_pixels); !checked.ok()) return checked;
  if (jpeg.is_cmyk()) {
    return Status::InvalidArgument(
        "image is a CMYK JPEG: only grayscale and colour (YCbCr or RGB) JPEGs are accepted");
  }
  DecodedImage decoded{size.width, size.height, channels, {}};
  if (!jpeg.read_pixels(channels, decoded.pixels)) return jpeg_failure(jpeg);
  return decoded;
}

}  // namespace

StatusOr<DecodedImage> DecodeImage(std::string_view encoded, int channels, int64_t max_pixels) {
  if (channels != 1 && channels != 3) {
    return Status::InvalidArgument("image input needs a model with 1 or 3 channels");
  }
  if (encoded.substr(0, kPngSignature.size()) == kPngSignature) {
    return decode_png(encoded, channels, max_pixels);
  }
  if (encoded.substr(0, kJpegSignature.size()) == kJpegSignature) {
    return decode_jpeg(encoded, channels, max_pixels);
  }
  return neither_png_nor_jpeg(encoded);
}

}  // namespace gemserve
