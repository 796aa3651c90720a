// Key=value log records: see cmail/backends/log_line.h.
#include <cmail/backends/log_line.h>

namespace cmail::backends {

std::string log_value(std::string_view v) {
  bool bare = !v.empty();
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == '"' || c == '\\' || c == '=') bare = false;
  }
  if (bare) return std::string(v);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7F) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

LogLine& LogLine::add(std::string_view key, std::string_view value) {
  line_ += ' ';
  line_ += key;
  line_ += '=';
  line_ += log_value(value);
  return *this;
}

LogLine& LogLine::add(std::string_view key, std::uint64_t value) { return add(key, std::to_string(value)); }

LogLine& LogLine::add(std::string_view key, std::chrono::milliseconds value) {
  const auto ms = value.count() < 0 ? 0 : value.count();
  std::string frac = std::to_string(ms % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  return add(key, std::to_string(ms / 1000) + "." + frac + "s");
}

}  // namespace cmail::backends
