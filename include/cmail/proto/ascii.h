// cmail/proto/ascii.h: ASCII case for protocol keywords, domains and local parts.
//
// Mail protocols compare their keywords case-insensitively in ASCII only (RFC 5321 2.4,
// RFC 1939 3, RFC 9051 9); the locale never applies, and octets >= 0x80 (UTF-8) are left as
// they are.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cmail::proto {

// RFC 5234 B.1 core rules: ALPHA, DIGIT, WSP (SP / HTAB).
constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
constexpr bool is_wsp(char c) { return c == ' ' || c == '\t'; }

constexpr char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ascii_upper(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = ascii_upper(c);
  return r;
}

inline std::string ascii_lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = ascii_lower(c);
  return r;
}

// True when `a` equals the upper-case ASCII `upper` ignoring case.
constexpr bool equals_upper(std::string_view a, std::string_view upper) {
  if (a.size() != upper.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_upper(a[i]) != upper[i]) return false;
  return true;
}

// True when `s` starts with the upper-case ASCII `prefix` ignoring case.
constexpr bool starts_with_upper(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equals_upper(s.substr(0, prefix.size()), prefix);
}

// Appends the UTF-8 form of a code point (RFC 3629 3); the caller gives a valid one.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace cmail::proto
