// A main for the fuzz targets without libFuzzer: runs every file of the directories (or the
// files) given, in name order, through LLVMFuzzerTestOneInput once. scripts/test.sh uses it to
// replay the fuzzers' corpora through the gcc-built, coverage-instrumented tree, so coverage
// counts what the fuzzers reached. Exit status 0 unless the target aborts.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; i++) {
    std::error_code ec;
    if (std::filesystem::is_directory(argv[i], ec)) {
      for (const auto& e : std::filesystem::directory_iterator(argv[i], ec))
        if (e.is_regular_file()) inputs.push_back(e.path());
    } else if (std::filesystem::is_regular_file(argv[i], ec)) {
      inputs.push_back(argv[i]);
    }
  }
  std::sort(inputs.begin(), inputs.end());
  size_t bytes = 0;
  for (const auto& p : inputs) {
    std::ifstream f(p, std::ios::binary);
    std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    bytes += in.size();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  std::fprintf(stderr, "%s: replayed %zu inputs (%zu bytes)\n", argv[0], inputs.size(), bytes);
  return 0;
}
