#pragma once

// Reads Fashion-MNIST's gzip idx files (Debian's dataset-fashion-mnist).

#include <cstdint>
#include <string>
#include <vector>

namespace gemserve::testing {

struct ImageSet {
  int rows = 0;
  int cols = 0;
  std::vector<std::vector<uint8_t>> images;  // rows * cols pixels each
  std::vector<int> labels;
};

// The first `count` images and labels of the 10k test split in `directory`. Aborts
// with a message if the files are missing or malformed.
ImageSet LoadFashionMnistTest(const std::string& directory, int count);

}  // namespace gemserve::testing
