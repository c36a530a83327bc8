// gem_torchscript_run MODEL.pt INPUT.pt OUTPUT.pt
//
// Loads a TorchScript module, runs forward() on the tensor saved (torch.save) in
// INPUT.pt and writes the result to OUTPUT.pt (readable with torch.load). The source
// never names the GEM op library: the module finds gem::gem only because the library's
// static registration survived linking. Exit code 1 with a message on any error.

#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

namespace {

std::vector<char> read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot read ") + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const char* path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(std::string("cannot write ") + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt INPUT.pt OUTPUT.pt\n";
    return 2;
  }
  try {
    torch::jit::Module module = torch::jit::load(argv[1]);
    module.eval();
    const at::Tensor input = torch::pickle_load(read_file(argv[2])).toTensor();
    const at::Tensor output = module.forward({input}).toTensor();
    write_file(argv[3], torch::pickle_save(output));
  } catch (const std::exception& e) {
    std::cerr << "gem_torchscript_run: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
