// tests/unit/harness.h: drive sans-I/O engines with byte strings.
//
// feed() splits its input according to the enclosing SPLIT_SUBCASES(): whole, one byte at a
// time, and at random points, like h11's tr() and Dovecot's trickle streams. Every
// conversation test runs all three ways. The random points come from the test case's own seed
// (seed.h: derived from its name, or CMAIL_TEST_SEED), so a failure repeats when the test case
// runs alone or in another order; a failing check prints the seed and how to rerun.
#pragma once

#include "seed.h"

#include <cmail/proto/transport.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>

namespace cmail::test {

enum class Split { Whole, Bytewise, Random };

inline Split& current_split() {
  static Split s = Split::Whole;
  return s;
}

// Runs the rest of the test case three times, once per split mode.
#define SPLIT_SUBCASES()                                                              \
  SUBCASE("whole") { ::cmail::test::current_split() = ::cmail::test::Split::Whole; }   \
  SUBCASE("byte by byte") { ::cmail::test::current_split() = ::cmail::test::Split::Bytewise; } \
  SUBCASE("random splits") { ::cmail::test::current_split() = ::cmail::test::Split::Random; }

template <typename E>
void feed(E& engine, std::string_view bytes) {
  switch (current_split()) {
    case Split::Whole:
      engine.receive(bytes);
      break;
    case Split::Bytewise:
      for (char c : bytes) engine.receive(std::string_view(&c, 1));
      break;
    case Split::Random:
      while (!bytes.empty()) {
        std::size_t n = std::uniform_int_distribution<std::size_t>(1, 17)(test_rng());
        n = std::min(n, bytes.size());
        engine.receive(bytes.substr(0, n));
        bytes.remove_prefix(n);
      }
      break;
  }
}

template <typename E>
std::string take_output(E& engine) {
  std::string out(engine.pending_output());
  engine.consume_output(out.size());
  return out;
}

template <typename T, typename E>
T expect_event(E& engine) {
  auto ev = engine.next_event();
  REQUIRE(ev.has_value());
  REQUIRE(std::holds_alternative<T>(*ev));
  return std::get<T>(*ev);
}

}  // namespace cmail::test
