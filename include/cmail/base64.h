// cmail/base64.h: base64 (RFC 4648 4), the one codec of SASL exchanges (RFC 4422 3.1), DKIM's
// b= and bh= tags and p= keys (RFC 6376 3.5, 3.6.1), PEM (RFC 7468) and MIME (RFC 2045 6.8).
//
// Strict: padding required, no whitespace, canonical trailing bits. Callers that accept folding
// whitespace (DKIM tag values, PEM lines) drop it first.
//
// Thread-safety: pure functions.
#pragma once

#include <cmail/export.h>

#include <optional>
#include <string>
#include <string_view>

namespace cmail {

// The value of a base64 digit (RFC 4648 4, Table 1: the alphabet of RFC 2045 6.8 too), or -1.
constexpr int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

CMAIL_EXPORT std::string base64_encode(std::string_view bytes);
CMAIL_EXPORT std::optional<std::string> base64_decode(std::string_view text);

}  // namespace cmail
