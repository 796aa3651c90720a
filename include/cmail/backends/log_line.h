// cmail/backends/log_line.h: the one-line key=value log records operators and fail2ban read
// (docs/logging.md): authentication, connections, transactions, deliveries.
//
//   LogLine("auth failed").add("proto", "smtp").add("addr", "192.0.2.7").str()
//     == "auth failed proto=smtp addr=192.0.2.7"
//
// A line is an event (a few fixed words) and fields. A value is written bare when it is not empty
// and holds only printable ASCII other than space, '"', '\\' and '='; otherwise it is quoted:
// "..." with \" and \\ escaped and every control or non-ASCII octet written as \xHH. So a record
// stays on one line, and no value (a user name, a reply text) can pose as another field.
// Never put a secret in a field: passwords and AUTH payloads are not logged anywhere.
//
// Thread-safety: a value type.
#pragma once

#include <cmail/export.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace cmail::backends {

// `value` as a field value: bare or quoted by the rule above.
CMAIL_EXPORT std::string log_value(std::string_view value);

class CMAIL_EXPORT LogLine {
 public:
  explicit LogLine(std::string_view event) : line_(event) {}
  LogLine& add(std::string_view key, std::string_view value);
  LogLine& add(std::string_view key, std::uint64_t value);
  // Seconds with millisecond precision: "1.250s".
  LogLine& add(std::string_view key, std::chrono::milliseconds value);
  const std::string& str() const { return line_; }

 private:
  std::string line_;
};

}  // namespace cmail::backends
