// Runs a libFuzzer target without libFuzzer: every file of the corpus directories given on the
// command line, then `kMutations` deterministic mutations of each (byte flips, truncations,
// splices), so that the g++ build and the sanitizer build replay and lightly fuzz every target.
// The clang build (-Dfuzzing=true) links real libFuzzer instead.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  constexpr int kMutations = 300;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    auto add = [&](const std::filesystem::path& f) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      inputs.push_back(ss.str());
    };
    if (std::filesystem::is_directory(p)) {
      for (auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file()) add(e.path());
    } else {
      add(p);
    }
  }
  std::mt19937 rng(42);
  std::size_t runs = 0;
  for (const std::string& seed : inputs) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(seed.data()), seed.size());
    ++runs;
    for (int m = 0; m < kMutations; ++m) {
      std::string s = seed;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        std::size_t at = rng() % s.size();
        switch (rng() % 4) {
          case 0: s[at] = static_cast<char>(rng()); break;
          case 1: s.erase(at, rng() % 8); break;
          case 2: s.insert(at, inputs[rng() % inputs.size()].substr(0, rng() % 32)); break;
          case 3: s.resize(at); break;
        }
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
      ++runs;
    }
  }
  std::printf("%zu inputs run\n", runs);
  return inputs.empty() ? 1 : 0;
}
