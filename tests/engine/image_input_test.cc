// Classify preprocessing: pixel tensors and PNG/JPEG bytes become the model's
// normalised [C, H, W] input; malformed input is refused naming the field.

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <cmath>
#include <string>
#include <vector>

#include "server/engine/image_input.h"

namespace gemserve {
namespace {

const ImageSpec kFashion{1, 28, 28, {0.286f}, {0.353f}};
constexpr int64_t kPixels = 4 << 20;

void AppendTo(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<char*>(data), static_cast<size_t>(size));
}

std::string EncodePng(const std::vector<unsigned char>& pixels, int width, int height,
                      int channels) {
  std::string bytes;
  stbi_write_png_to_func(AppendTo, &bytes, width, height, channels, pixels.data(),
                         width * channels);
  return bytes;
}

std::string EncodeJpeg(const std::vector<unsigned char>& pixels, int width, int height,
                       int channels) {
  std::string bytes;
  stbi_write_jpg_to_func(AppendTo, &bytes, width, height, channels, pixels.data(), 95);
  return bytes;
}

float Normalised(float pixel01) { return (pixel01 - 0.286f) / 0.353f; }

TEST(ImageInput, GrayPngDecodesExactly) {
  std::vector<unsigned char> pixels(28 * 28);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i % 251);
  StatusOr<at::Tensor> input = ImageToModelInput(EncodePng(pixels, 28, 28, 1), kFashion, kPixels);
  ASSERT_TRUE(input.ok()) << input.status().message();
  ASSERT_EQ(input->sizes(), (std::vector<int64_t>{1, 28, 28}));
  const float* data = input->data_ptr<float>();
  for (size_t i = 0; i < pixels.size(); ++i) {
    ASSERT_FLOAT_EQ(data[i], Normalised(pixels[i] / 255.0f)) << i;
  }
}

TEST(ImageInput, PngAndTensorOfTheSameImageAgree) {
  std::vector<unsigned char> pixels(28 * 28);
  PixelTensor tensor{{1, 1, 28, 28}, {}};
  for (size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<unsigned char>((i * 7) % 256);
    tensor.data.push_back(pixels[i] / 255.0f);
  }
  StatusOr<at::Tensor> from_png = ImageToModelInput(EncodePng(pixels, 28, 28, 1), kFashion, kPixels);
  StatusOr<at::Tensor> from_tensor = PixelsToModelInput(tensor, kFashion);
  ASSERT_TRUE(from_png.ok() && from_tensor.ok());
  EXPECT_TRUE(at::equal(from_png.value(), from_tensor.value()));
}

TEST(ImageInput, ColourAndSizeAreConverted) {
  // A uniform RGB image of twice the size: gray by luminance, resized to 28 x 28.
  std::vector<unsigned char> pixels(56 * 56 * 3);
  for (size_t i = 0; i < pixels.size(); i += 3) {
    pixels[i] = 200;
    pixels[i + 1] = 200;
    pixels[i + 2] = 200;
  }
  StatusOr<at::Tensor> input = ImageToModelInput(EncodePng(pixels, 56, 56, 3), kFashion, kPixels);
  ASSERT_TRUE(input.ok()) << input.status().message();
  ASSERT_EQ(input->sizes(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_NEAR(input->min().item<float>(), Normalised(200 / 255.0f), 0.02);
  EXPECT_NEAR(input->max().item<float>(), Normalised(200 / 255.0f), 0.02);
}

TEST(ImageInput, JpegDecodesClose) {
  std::vector<unsigned char> pixels(28 * 28, 120);
  StatusOr<at::Tensor> input = ImageToModelInput(EncodeJpeg(pixels, 28, 28, 1), kFashion, kPixels);
  ASSERT_TRUE(input.ok()) << input.status().message();
  EXPECT_NEAR(input->mean().item<float>(), Normalised(120 / 255.0f), 0.03);
}

TEST(ImageInput, UndecodableBytesAreRefused) {
  for (const std::string& bytes : {std::string(), std::string("not an image at all"),
                                   std::string("\x89PNG\r\n\x1a\n garbage", 16)}) {
    StatusOr<at::Tensor> input = ImageToModelInput(bytes, kFashion, kPixels);
    ASSERT_FALSE(input.ok());
    EXPECT_EQ(input.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(input.status().message().rfind("image", 0), 0u) << input.status().message();
  }
}

TEST(ImageInput, TensorsAreValidated) {
  const std::vector<float> image(28 * 28, 0.5f);
  EXPECT_TRUE(PixelsToModelInput({{1, 28, 28}, image}, kFashion).ok());
  EXPECT_TRUE(PixelsToModelInput({{1, 1, 28, 28}, image}, kFashion).ok());
  auto refused = [](const PixelTensor& t) {
    StatusOr<at::Tensor> r = PixelsToModelInput(t, kFashion);
    return r.ok() ? std::string("accepted") : r.status().message();
  };
  EXPECT_NE(refused({{3, 28, 28}, image}).find("tensor.shape"), std::string::npos);
  EXPECT_NE(refused({{2, 1, 28, 28}, image}).find("tensor.shape"), std::string::npos);
  EXPECT_NE(refused({{28, 28}, image}).find("tensor.shape"), std::string::npos);
  EXPECT_NE(refused({{1, 28, 28}, std::vector<float>(10)}).find("tensor.data"), std::string::npos);
  std::vector<float> with_nan = image;
  with_nan[5] = std::nanf("");
  EXPECT_NE(refused({{1, 28, 28}, with_nan}).find("tensor.data"), std::string::npos);
}

TEST(ImageInput, FiniteTensorValuesThatOverflowWhenNormalisedAreRefused) {
  std::vector<float> image(28 * 28, 0.5f);
  image[3] = 3e38f;  // finite, but (3e38 - 0.286) / 0.353 is not
  StatusOr<at::Tensor> input = PixelsToModelInput({{1, 28, 28}, image}, kFashion);
  ASSERT_FALSE(input.ok());
  EXPECT_EQ(input.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(input.status().message().find("tensor.data gives a value that is not finite"),
            std::string::npos) << input.status().message();
  image[3] = -3e38f;
  EXPECT_FALSE(PixelsToModelInput({{1, 28, 28}, image}, kFashion).ok());
}

TEST(ImageInput, ImageValuesThatOverflowWhenNormalisedAreRefused) {
  const ImageSpec tiny_std{1, 2, 2, {0.0f}, {1e-45f}};  // > 0, as the config requires
  StatusOr<at::Tensor> input =
      ImageToModelInput(EncodePng({0, 0, 0, 255}, 2, 2, 1), tiny_std, kPixels);
  ASSERT_FALSE(input.ok());
  EXPECT_EQ(input.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(input.status().message().find("image gives a value that is not finite"),
            std::string::npos) << input.status().message();
}

TEST(ImageInput, GrayImageForAnRgbModelFillsEveryChannel) {
  const ImageSpec rgb{3, 2, 2, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  const std::vector<unsigned char> gray = {0, 51, 102, 255};
  for (const std::string& encoded : {EncodePng(gray, 2, 2, 1), EncodeJpeg(gray, 2, 2, 1)}) {
    StatusOr<at::Tensor> input = ImageToModelInput(encoded, rgb, kPixels);
    ASSERT_TRUE(input.ok()) << input.status().message();
    ASSERT_EQ(input->sizes(), (std::vector<int64_t>{3, 2, 2}));
    EXPECT_TRUE(at::equal(input.value()[0], input.value()[1]));
    EXPECT_TRUE(at::equal(input.value()[0], input.value()[2]));
  }
  StatusOr<at::Tensor> png = ImageToModelInput(EncodePng(gray, 2, 2, 1), rgb, kPixels);
  EXPECT_FLOAT_EQ(png->data_ptr<float>()[3], (1.0f - 0.5f) / 0.25f);
}

TEST(ImageInput, RgbImageForAGrayModelIsLuminance) {
  // Pure green is brighter than pure red, which is brighter than pure blue.
  const ImageSpec gray{1, 1, 3, {0.0f}, {1.0f}};
  const std::vector<unsigned char> rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  StatusOr<at::Tensor> input = ImageToModelInput(EncodePng(rgb, 3, 1, 3), gray, kPixels);
  ASSERT_TRUE(input.ok()) << input.status().message();
  const float* v = input->data_ptr<float>();
  EXPECT_GT(v[1], v[0]);
  EXPECT_GT(v[0], v[2]);
}

TEST(ImageInput, LargerImageIsResized) {
  // 280 x 140, left half black and right half white: resized to 28 x 28, the halves stay.
  std::vector<unsigned char> pixels(280 * 140);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = (i % 280) < 140 ? 0 : 255;
  for (const std::string& encoded :
       {EncodePng(pixels, 280, 140, 1), EncodeJpeg(pixels, 280, 140, 1)}) {
    StatusOr<at::Tensor> input = ImageToModelInput(encoded, kFashion, kPixels);
    ASSERT_TRUE(input.ok()) << input.status().message();
    ASSERT_EQ(input->sizes(), (std::vector<int64_t>{1, 28, 28}));
    EXPECT_NEAR(input.value()[0][14][2].item<float>(), Normalised(0.0f), 0.05);
    EXPECT_NEAR(input.value()[0][14][25].item<float>(), Normalised(1.0f), 0.05);
  }
}

TEST(ImageInput, ExtremeStripsAreResizedAndKeepTheirHalves) {
  // 1 x 200,000 (top half black, bottom half white) and 200,000 x 1 (left half black):
  // each side is box-averaged before the resize; the halves stay where they were.
  constexpr int kLong = 200000;
  std::vector<unsigned char> strip(kLong);
  for (int i = 0; i < kLong; ++i) strip[i] = i < kLong / 2 ? 0 : 255;
  StatusOr<at::Tensor> tall = ImageToModelInput(EncodePng(strip, 1, kLong, 1), kFashion, kPixels);
  ASSERT_TRUE(tall.ok()) << tall.status().message();
  EXPECT_NEAR(tall.value()[0][2][14].item<float>(), Normalised(0.0f), 0.05);
  EXPECT_NEAR(tall.value()[0][25][14].item<float>(), Normalised(1.0f), 0.05);
  StatusOr<at::Tensor> wide = ImageToModelInput(EncodePng(strip, kLong, 1, 1), kFashion, kPixels);
  ASSERT_TRUE(wide.ok()) << wide.status().message();
  EXPECT_NEAR(wide.value()[0][14][2].item<float>(), Normalised(0.0f), 0.05);
  EXPECT_NEAR(wide.value()[0][14][25].item<float>(), Normalised(1.0f), 0.05);
}

TEST(ImageInput, DownscalingKeepsTheMeanOfEachRegion) {
  // 1000 x 1000 RGB noise whose left and right halves differ in level: each 28 x 28 half
  // keeps its level. An edge block of the 1000-pixel side (1000 = 17 x 56 + 48) is
  // averaged over the pixels it has, so it is not darker than the rest.
  constexpr int kSide = 1000;
  std::vector<unsigned char> pixels(kSide * kSide * 3);
  uint32_t state = 1;
  for (size_t i = 0; i < pixels.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    const int level = (i / 3) % kSide < kSide / 2 ? 60 : 180;
    pixels[i] = static_cast<unsigned char>(level - 40 + (state >> 24) % 81);
  }
  const ImageSpec rgb{3, 28, 28, {0, 0, 0}, {1, 1, 1}};
  StatusOr<at::Tensor> input = ImageToModelInput(EncodePng(pixels, kSide, kSide, 3), rgb, kPixels);
  ASSERT_TRUE(input.ok()) << input.status().message();
  const at::Tensor left = input.value().slice(2, 0, 12);
  const at::Tensor right = input.value().slice(2, 16, 28);
  EXPECT_NEAR(left.mean().item<float>(), 60 / 255.0f, 0.01);
  EXPECT_NEAR(right.mean().item<float>(), 180 / 255.0f, 0.01);
  EXPECT_NEAR(input.value().select(1, 27).slice(1, 16, 28).mean().item<float>(), 180 / 255.0f,
              0.02);
}

TEST(ImageInput, MaxPixelsIsCheckedBeforeDecoding) {
  const std::string png = EncodePng(std::vector<unsigned char>(28 * 28, 7), 28, 28, 1);
  EXPECT_TRUE(ImageToModelInput(png, kFashion, 28 * 28).ok());
  StatusOr<at::Tensor> refused = ImageToModelInput(png, kFashion, 28 * 28 - 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            "image is 28 x 28 pixels: must be at least 1 x 1 and at most 783 pixels in all");
}

TEST(ImageInput, OtherFormatsAndModelsAreRefused) {
  StatusOr<at::Tensor> gif = ImageToModelInput("GIF89a\x01\0\x01\0", kFashion, kPixels);
  ASSERT_FALSE(gif.ok());
  EXPECT_EQ(gif.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(gif.status().message().find("only PNG and JPEG are accepted"), std::string::npos);
  const ImageSpec four{4, 28, 28, {0, 0, 0, 0}, {1, 1, 1, 1}};
  const std::string png = EncodePng(std::vector<unsigned char>(28 * 28, 1), 28, 28, 1);
  StatusOr<at::Tensor> rgba = ImageToModelInput(png, four, kPixels);
  ASSERT_FALSE(rgba.ok());
  EXPECT_EQ(rgba.status().message(), "image input needs a model with 1 or 3 channels");
}

}  // namespace
}  // namespace gemserve
