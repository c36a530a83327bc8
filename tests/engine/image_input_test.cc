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
  for (const std::string& bytes : {std::string(), std::string("not an image at all")}) {
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

}  // namespace
}  // namespace gemserve
