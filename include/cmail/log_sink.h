// cmail/log_sink.h: where a component's log lines go, and which of them are wanted.
//
// A LogSink is a function that takes a line with its level (0 errors and warnings, 1 the
// operator's lines: connections, messages, log-ins; 2-4 more detail; docs/logging.md) and the
// highest level it shows. Components ask shows(level) before they build a line, so that a
// daemon at verbosity 0 does not format (and then drop) a line for every connection and
// message. Calling it with a level above the verbosity does nothing.
//
// Thread-safety: a LogSink is a value; calling it is as thread-safe as its function.
#pragma once

#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cmail {

class LogSink {
 public:
  LogSink() = default;
  // From any callable taking (int level, std::string_view line); every level is shown unless
  // `verbosity` says otherwise.
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, LogSink> &&
                                                    std::is_invocable_v<F&, int, std::string_view>>>
  LogSink(F write, int verbosity = 4) : write_(std::move(write)), verbosity_(verbosity) {}  // NOLINT: implicit

  // A line of this level would be written.
  bool shows(int level) const { return write_ && level <= verbosity_; }
  void operator()(int level, std::string_view line) const {
    if (shows(level)) write_(level, line);
  }
  explicit operator bool() const { return static_cast<bool>(write_); }

 private:
  std::function<void(int level, std::string_view line)> write_;
  int verbosity_ = 4;
};

}  // namespace cmail
