// tests/unit/seed.h: every test case's own random seed, so that a failure repeats.
//
// The seed of a test case is derived from its name (FNV-1a), so it does not depend on which
// tests ran before it, on their order or on the filters; the environment variable
// CMAIL_TEST_SEED (decimal or 0x hex) overrides it for every test case, to try other splits.
// The listener in main.cc reseeds test_rng() each time a test case is entered (once per
// subcase run, so every SUBCASE path draws the same numbers when run alone) and, when a check
// fails, prints the seed and the command that runs that test case again with it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace cmail::test {

// FNV-1a, 32 bits: the same value on every platform and standard library (std::hash is not).
constexpr std::uint32_t seed_from_name(std::string_view name) {
  std::uint32_t h = 2166136261u;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

// CMAIL_TEST_SEED, when set to a number.
inline std::optional<std::uint32_t> seed_from_environment() {
  const char* s = std::getenv("CMAIL_TEST_SEED");
  if (s == nullptr || *s == '\0') return std::nullopt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (end == s || *end != '\0') return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

struct SeedState {
  std::string test_case;   // the test case now running ("" outside test cases)
  std::uint32_t seed = 0;  // its seed
  std::mt19937 rng{0};
};

inline SeedState& seed_state() {
  static SeedState s;
  return s;
}

// Called by the listener whenever `test_case` is entered (or entered again for a subcase).
inline void reseed(std::string_view test_case) {
  SeedState& s = seed_state();
  s.test_case = std::string(test_case);
  s.seed = seed_from_environment().value_or(seed_from_name(test_case));
  s.rng.seed(s.seed);
}

// The seed of the running test case, and a generator that starts from it at every entry.
inline std::uint32_t test_seed() { return seed_state().seed; }
inline std::mt19937& test_rng() { return seed_state().rng; }

}  // namespace cmail::test
