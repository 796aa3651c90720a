// base64 (RFC 4648 4).
#include <cmail/base64.h>

namespace cmail {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int a = base64_value(in[i]), b = base64_value(in[i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    if (last && in[i + 2] == '=') {
      if (in[i + 3] != '=' || (b & 15) != 0) return std::nullopt;  // canonical: unused bits 0
      out += static_cast<char>((a << 2) | (b >> 4));
      break;
    }
    int c = base64_value(in[i + 2]);
    if (c < 0) return std::nullopt;
    if (last && in[i + 3] == '=') {
      if ((c & 3) != 0) return std::nullopt;
      out += static_cast<char>((a << 2) | (b >> 4));
      out += static_cast<char>(((b & 15) << 4) | (c >> 2));
      break;
    }
    int d = base64_value(in[i + 3]);
    if (d < 0) return std::nullopt;
    out += static_cast<char>((a << 2) | (b >> 4));
    out += static_cast<char>(((b & 15) << 4) | (c >> 2));
    out += static_cast<char>(((c & 3) << 6) | d);
  }
  return out;
}

}  // namespace cmail
