// Runs a libFuzzer target without libFuzzer: every file of the corpus directories given on the
// command line, then `kMutations` mutations of each (byte flips, truncations, splices), so that
// the g++ build and the sanitizer build replay and lightly fuzz every target. The clang build
// (-Dfuzzing=true) links real libFuzzer instead.
//
// Reproducible: the files run in sorted order, and each file's mutations come from its own
// seed, derived from its name plus CMAIL_TEST_SEED (0 when unset; set it to try other
// mutations). When an input crashes the target (a signal, or a sanitizer's report), the
// driver names the file, the mutation and the seed, writes the input to a file and prints
// the command that runs it again.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

// What is running now, for the crash report (set before each run; read by a signal handler).
struct Running {
  const std::string* input = nullptr;
  int mutation = -1;  // -1: the file as it is
  char report[4096] = {};
  std::size_t report_size = 0;
  char crash_file[512] = {};
} g_running;

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Async-signal-safe: only write(2) and open(2) of what was prepared before the run.
void report_crash() {
  static volatile sig_atomic_t reported = 0;
  if (reported || g_running.input == nullptr) return;
  reported = 1;
  int fd = ::open(g_running.crash_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    write_all(fd, g_running.input->data(), g_running.input->size());
    ::close(fd);
  }
  write_all(2, g_running.report, g_running.report_size);
}

void on_signal(int sig) {
  report_crash();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::uint32_t fnv1a(const std::string& s) {
  std::uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int kMutations = 300;
  std::uint32_t base = 0;
  if (const char* s = std::getenv("CMAIL_TEST_SEED"); s && *s) base = static_cast<std::uint32_t>(std::strtoull(s, nullptr, 0));

  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());  // directory order differs between file systems
  std::vector<std::string> inputs;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    inputs.push_back(ss.str());
  }

  std::snprintf(g_running.crash_file, sizeof g_running.crash_file, "%s/cmail-fuzz-crash-%d",
                std::filesystem::temp_directory_path().c_str(), static_cast<int>(getpid()));
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, on_signal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(report_crash);

  std::string args;
  for (int i = 1; i < argc; ++i) args += std::string(" '") + argv[i] + "'";
  std::size_t runs = 0;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const std::string& seed_input = inputs[k];
    const std::string name = files[k].filename().string();
    const std::uint32_t seed = fnv1a(name) + base;
    std::mt19937 rng(seed);
    for (int m = -1; m < kMutations; ++m) {
      std::string s = seed_input;
      if (m >= 0) {
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
      }
      g_running.mutation = m;
      int n = std::snprintf(g_running.report, sizeof g_running.report,
                            "\nfuzz replay: the input that failed is %s (%s, seed %u = its name's + CMAIL_TEST_SEED %u)\n"
                            "fuzz replay: run it again: CMAIL_TEST_SEED=%u %s%s\n",
                            g_running.crash_file,
                            m < 0 ? ("corpus file " + files[k].string()).c_str()
                                  : ("mutation " + std::to_string(m) + " of " + files[k].string()).c_str(),
                            seed, base, base, argv[0], args.c_str());
      g_running.report_size = n < 0 ? 0 : std::min<std::size_t>(static_cast<std::size_t>(n), sizeof g_running.report - 1);
      g_running.input = &s;
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
      g_running.input = nullptr;
      ++runs;
    }
  }
  std::printf("%zu inputs run (%zu files, %d mutations each; CMAIL_TEST_SEED %u)\n", runs, inputs.size(), kMutations,
              base);
  return inputs.empty() ? 1 : 0;
}
