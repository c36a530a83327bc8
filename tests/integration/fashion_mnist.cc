#include "tests/integration/fashion_mnist.h"

#include <zlib.h>

#include <cstdlib>
#include <iostream>

namespace gemserve::testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "fashion_mnist: " << message << std::endl;
  std::abort();
}

class GzipFile {
 public:
  explicit GzipFile(const std::string& path) : file_(gzopen(path.c_str(), "rb")) {
    if (!file_) Die("cannot open " + path);
  }
  ~GzipFile() { gzclose(file_); }

  void Read(void* out, unsigned size) {
    if (gzread(file_, out, size) != static_cast<int>(size)) Die("short read");
  }

  uint32_t ReadBigEndian() {
    unsigned char b[4];
    Read(b, 4);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }

 private:
  gzFile file_;
};

}  // namespace

ImageSet LoadFashionMnistTest(const std::string& directory, int count) {
  ImageSet set;
  GzipFile images(directory + "/t10k-images-idx3-ubyte.gz");
  if (images.ReadBigEndian() != 0x803) Die("bad image file magic");
  const uint32_t available = images.ReadBigEndian();
  set.rows = static_cast<int>(images.ReadBigEndian());
  set.cols = static_cast<int>(images.ReadBigEndian());
  if (static_cast<uint32_t>(count) > available) Die("not enough images");
  for (int i = 0; i < count; ++i) {
    std::vector<uint8_t> pixels(static_cast<size_t>(set.rows * set.cols));
    images.Read(pixels.data(), static_cast<unsigned>(pixels.size()));
    set.images.push_back(std::move(pixels));
  }
  GzipFile labels(directory + "/t10k-labels-idx1-ubyte.gz");
  if (labels.ReadBigEndian() != 0x801) Die("bad label file magic");
  labels.ReadBigEndian();
  std::vector<uint8_t> raw(static_cast<size_t>(count));
  labels.Read(raw.data(), static_cast<unsigned>(count));
  set.labels.assign(raw.begin(), raw.end());
  return set;
}

}  // namespace gemserve::testing
