// cmail/proto/command.h: command tables for the server engines.
//
// A server engine describes its commands as one constant table of Command entries: the verb,
// the states in which it may be given and the member function that runs it with its argument.
// The engine looks a line's verb up (case-insensitively: RFC 5321 2.4, RFC 1939 3, RFC 9051
// 9), answers an unknown verb or a verb given in the wrong state itself, and otherwise calls
// the handler, which parses the argument into the protocol's typed command (its wire codec)
// and acts on it. This replaces chains of string comparisons with one table per protocol that
// also documents the protocol's state machine.
//
// Thread-safety: constant data and pure functions.
#pragma once

#include <cmail/proto/ascii.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace cmail::proto {

// A set of values of an engine's State enum (at most 32 states).
template <typename State>
class StateSet {
 public:
  constexpr StateSet(std::initializer_list<State> states) {
    for (State s : states) bits_ |= bit(s);
  }
  static constexpr StateSet all() {
    StateSet s{};
    s.bits_ = ~std::uint32_t{0};
    return s;
  }
  constexpr bool contains(State s) const { return (bits_ & bit(s)) != 0; }

 private:
  static constexpr std::uint32_t bit(State s) { return std::uint32_t{1} << static_cast<unsigned>(s); }
  std::uint32_t bits_ = 0;
};

// One row of an engine's command table.
template <typename Engine, typename State>
struct Command {
  std::string_view verb;          // upper case
  StateSet<State> states;         // where it is allowed
  std::string_view out_of_state;  // the reply text when given elsewhere (the engine formats it)
  void (Engine::*run)(std::string_view argument);
};

// A command line split at its first space: "MAIL FROM:<a@b>" -> {"MAIL", "FROM:<a@b>"}.
struct CommandLine {
  std::string_view verb;
  std::string_view argument;  // empty when there is none
};

inline CommandLine split_command(std::string_view line) {
  std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return {line, {}};
  return {line.substr(0, sp), line.substr(sp + 1)};
}

// The row for `verb`, or nullptr.
template <typename Engine, typename State, std::size_t N>
const Command<Engine, State>* find_command(const std::array<Command<Engine, State>, N>& table,
                                           std::string_view verb) {
  for (const auto& c : table)
    if (equals_upper(verb, c.verb)) return &c;
  return nullptr;
}

}  // namespace cmail::proto
