// SPF records, macros and addresses. See cmail/mail/spf.h.
#include <cmail/mail/spf.h>

#include <cmail/proto/ascii.h>

#include <algorithm>

namespace cmail::mail::spf {

namespace {

bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool alnum(char c) { return alpha(c) || digit(c); }
int hex(char c) {
  if (digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status permerror(std::string_view what) { return Status::invalid_argument(std::string(what)); }

// RFC 7208 12: qnum, a decimal 0-255 without leading zeros.
std::optional<Ip> parse_ipv4(std::string_view s) {
  Ip ip;
  int part = 0;
  std::size_t at = 0;
  while (part < 4) {
    std::size_t end = at;
    while (end < s.size() && digit(s[end])) ++end;
    const std::string_view n = s.substr(at, end - at);
    if (n.empty() || n.size() > 3 || (n.size() > 1 && n[0] == '0')) return std::nullopt;
    int v = 0;
    for (char c : n) v = v * 10 + (c - '0');
    if (v > 255) return std::nullopt;
    ip.octets[part++] = static_cast<std::uint8_t>(v);
    if (part < 4) {
      if (end >= s.size() || s[end] != '.') return std::nullopt;
      at = end + 1;
    } else if (end != s.size()) {
      return std::nullopt;
    }
  }
  return ip;
}

// RFC 4291 2.2: eight groups of up to four hex digits, "::" once for a run of zero groups,
// the last 32 bits optionally as a dotted quad.
std::optional<Ip> parse_ipv6(std::string_view s) {
  std::vector<std::uint16_t> head, tail;
  bool gap = false;
  std::size_t at = 0;
  if (s.starts_with("::")) {
    gap = true;
    at = 2;
  } else if (s.starts_with(":")) {
    return std::nullopt;
  }
  bool v4_tail = false;
  std::array<std::uint8_t, 4> v4{};
  while (at < s.size()) {
    std::vector<std::uint16_t>& groups = gap ? tail : head;
    std::size_t end = at;
    while (end < s.size() && s[end] != ':') ++end;
    const std::string_view g = s.substr(at, end - at);
    if (end == s.size() && g.find('.') != std::string_view::npos) {  // the embedded IPv4 address
      auto q = parse_ipv4(g);
      if (!q) return std::nullopt;
      std::copy_n(q->octets.begin(), 4, v4.begin());
      v4_tail = true;
      at = end;
      break;
    }
    if (g.empty() || g.size() > 4) return std::nullopt;
    std::uint16_t v = 0;
    for (char c : g) {
      const int h = hex(c);
      if (h < 0) return std::nullopt;
      v = static_cast<std::uint16_t>(v * 16 + h);
    }
    groups.push_back(v);
    if (end == s.size()) {
      at = end;
      break;
    }
    if (end + 1 < s.size() && s[end + 1] == ':') {  // "::"
      if (gap) return std::nullopt;
      gap = true;
      at = end + 2;
    } else {
      at = end + 1;
      if (at == s.size()) return std::nullopt;  // a trailing single ":"
    }
  }
  const std::size_t groups = head.size() + tail.size() + (v4_tail ? 2 : 0);
  if (gap ? groups > 7 : groups != 8) return std::nullopt;
  Ip ip;
  ip.v6 = true;
  std::size_t i = 0;
  for (std::uint16_t g : head) {
    ip.octets[i++] = static_cast<std::uint8_t>(g >> 8);
    ip.octets[i++] = static_cast<std::uint8_t>(g);
  }
  i = 16 - tail.size() * 2 - (v4_tail ? 4 : 0);
  for (std::uint16_t g : tail) {
    ip.octets[i++] = static_cast<std::uint8_t>(g >> 8);
    ip.octets[i++] = static_cast<std::uint8_t>(g);
  }
  if (v4_tail) std::copy_n(v4.begin(), 4, ip.octets.begin() + 12);
  return ip;
}

// RFC 7208 12, toplabel: letters, digits and inner hyphens, not all digits.
bool toplabel(std::string_view l) {
  if (l.empty() || l.front() == '-' || l.back() == '-') return false;
  bool letter = false;
  for (char c : l) {
    if (!alnum(c) && c != '-') return false;
    letter = letter || alpha(c) || c == '-';
  }
  return letter;
}

bool macro_letter(char c, bool explanation) {
  switch (proto::ascii_lower(std::string_view(&c, 1))[0]) {
    case 's': case 'l': case 'o': case 'd': case 'i': case 'p': case 'h': case 'v':
      return true;
    case 'c': case 'r': case 't':  // RFC 7208 7.2: only in exp= text
      return explanation;
    default:
      return false;
  }
}

bool delimiter(char c) { return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '='; }

// One parsed "%..." at s[at]: where it ends; its pieces in *letter etc. nullopt if malformed.
struct Macro {
  char letter = 0;  // 0 for %% %_ %-
  char literal = 0;
  std::size_t keep = 0;  // 0: all
  bool reverse = false;
  std::string delimiters;
  std::size_t end = 0;
};

std::optional<Macro> read_macro(std::string_view s, std::size_t at, bool explanation) {
  Macro m;
  if (at + 1 >= s.size()) return std::nullopt;
  const char n = s[at + 1];
  if (n == '%' || n == '_' || n == '-') {
    m.literal = n == '%' ? '%' : n == '_' ? ' ' : '\0';
    m.end = at + 2;
    return m;
  }
  if (n != '{' || at + 2 >= s.size() || !macro_letter(s[at + 2], explanation)) return std::nullopt;
  m.letter = s[at + 2];
  std::size_t i = at + 3;
  std::size_t digits = 0;
  while (i < s.size() && digit(s[i])) {
    m.keep = m.keep * 10 + static_cast<std::size_t>(s[i] - '0');
    if (++digits > 3) return std::nullopt;  // more labels than a domain can have
    ++i;
  }
  if (digits && m.keep == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'r' || s[i] == 'R')) {
    m.reverse = true;
    ++i;
  }
  while (i < s.size() && delimiter(s[i])) m.delimiters += s[i++];
  if (i >= s.size() || s[i] != '}') return std::nullopt;
  m.end = i + 1;
  return m;
}

// RFC 7208 12: macro-string (and explain-string, which allows SP).
bool macro_string_ok(std::string_view s, bool explanation) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      auto m = read_macro(s, i, explanation);
      if (!m) return false;
      i = m->end;
      continue;
    }
    if (!((c >= 0x21 && c <= 0x7e) || (explanation && c == ' '))) return false;
    ++i;
  }
  return true;
}

// RFC 7208 12: domain-spec = macro-string domain-end; domain-end = ("." toplabel ["."]) /
// macro-expand.
bool domain_spec_ok(std::string_view s) {
  if (s.empty() || !macro_string_ok(s, false)) return false;
  if (s.ends_with("}") || s.ends_with("%%") || s.ends_with("%_") || s.ends_with("%-")) {
    // Ends in a macro-expand when the last "%" starts one that reaches the end.
    const std::size_t pct = s.rfind('%');
    if (auto m = read_macro(s, pct, false); m && m->end == s.size()) return true;
  }
  std::string_view d = s;
  if (d.ends_with(".")) d.remove_suffix(1);
  const std::size_t dot = d.rfind('.');
  return dot != std::string_view::npos && toplabel(d.substr(dot + 1));
}

std::optional<int> cidr(std::string_view n, int max) {
  if (n.empty() || n.size() > 3 || (n.size() > 1 && n[0] == '0')) return std::nullopt;
  int v = 0;
  for (char c : n) {
    if (!digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// Splits a dual-cidr-length ("/24", "//64", "/24//64") off the end of `arg`.
Status dual_cidr(std::string_view& arg, Mechanism& m) {
  const std::size_t dd = arg.rfind("//");
  if (dd != std::string_view::npos && arg.substr(dd + 2).find('/') == std::string_view::npos) {
    auto v6 = cidr(arg.substr(dd + 2), 128);
    if (!v6) return permerror("an ip6-cidr-length is not 0-128");
    m.cidr6 = *v6;
    arg = arg.substr(0, dd);
  }
  const std::size_t d = arg.rfind('/');
  if (d != std::string_view::npos && !arg.substr(d + 1).empty() &&
      std::all_of(arg.begin() + static_cast<std::ptrdiff_t>(d) + 1, arg.end(), digit)) {
    auto v4 = cidr(arg.substr(d + 1), 32);
    if (!v4) return permerror("an ip4-cidr-length is not 0-32");
    m.cidr4 = *v4;
    arg = arg.substr(0, d);
  }
  return Status();
}

std::string url_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {  // RFC 3986 2.3 unreserved
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::optional<Ip> parse_ip(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return parse_ipv6(text);
  return parse_ipv4(text);
}

bool same_network(const Ip& a, const Ip& b, int bits) {
  if (a.v6 != b.v6) return false;
  const int max = a.v6 ? 128 : 32;
  bits = std::clamp(bits, 0, max);
  int i = 0;
  for (; bits >= 8; bits -= 8, ++i)
    if (a.octets[i] != b.octets[i]) return false;
  if (bits == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
  return (a.octets[i] & mask) == (b.octets[i] & mask);
}

std::string macro_ip(const Ip& ip) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  if (!ip.v6) {
    for (int i = 0; i < 4; ++i) out += (i ? "." : "") + std::to_string(ip.octets[i]);
    return out;
  }
  for (int i = 0; i < 16; ++i) {  // RFC 7208 7.3: dot-separated nibbles
    if (i) out += '.';
    out += kHex[ip.octets[i] >> 4];
    out += '.';
    out += kHex[ip.octets[i] & 15];
  }
  return out;
}

std::string readable_ip(const Ip& ip) {
  if (!ip.v6) return macro_ip(ip);
  std::array<std::uint16_t, 8> g{};
  for (int i = 0; i < 8; ++i) g[i] = static_cast<std::uint16_t>(ip.octets[2 * i] << 8 | ip.octets[2 * i + 1]);
  // RFC 5952 4.2: the longest run of two or more zero groups (the first of equals) is "::".
  int best = -1, best_len = 1;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j == i ? i + 1 : j;
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && !out.ends_with(":")) out += ':';
    std::string h;
    for (int s = 12; s >= 0; s -= 4)
      if (!h.empty() || ((g[i] >> s) & 15) || s == 0) h += kHex[(g[i] >> s) & 15];
    out += h;
  }
  return out;
}

bool is_spf_record(std::string_view txt) {
  if (txt.size() < 6 || !proto::equals_upper(txt.substr(0, 6), "V=SPF1")) return false;
  return txt.size() == 6 || txt[6] == ' ';
}

Result<Record> parse_record(std::string_view text) {
  if (!is_spf_record(text)) return permerror("not an SPF record (v=spf1)");
  Record rec;
  std::size_t at = 6;
  while (at < text.size()) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    const std::size_t end = std::min(text.find(' ', at), text.size());
    std::string_view term = text.substr(at, end - at);
    at = end;
    // A modifier: name "=" (RFC 7208 12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )).
    std::size_t n = 0;
    while (n < term.size() && (alnum(term[n]) || term[n] == '-' || term[n] == '_' || term[n] == '.')) ++n;
    if (n > 0 && alpha(term[0]) && n < term.size() && term[n] == '=') {
      const std::string name = proto::ascii_lower(term.substr(0, n));
      const std::string_view value = term.substr(n + 1);
      if (name == "redirect" || name == "exp") {
        std::optional<std::string>& slot = name == "redirect" ? rec.redirect : rec.explanation;
        if (slot) return permerror(name + "= is given twice");  // RFC 7208 6
        if (!domain_spec_ok(value)) return permerror(name + "= is not a domain-spec");
        slot = std::string(value);
      } else if (!macro_string_ok(value, false)) {
        return permerror("modifier " + name + "= is not a macro-string");
      }
      continue;
    }
    Mechanism m;
    if (!term.empty() && (term[0] == '+' || term[0] == '-' || term[0] == '~' || term[0] == '?')) {
      m.qualifier = static_cast<Qualifier>(term[0]);
      term.remove_prefix(1);
    }
    std::size_t k = 0;
    while (k < term.size() && alnum(term[k])) ++k;
    const std::string name = proto::ascii_lower(term.substr(0, k));
    std::string_view arg = term.substr(k);  // ":..." and/or "/..." or ""
    using K = Mechanism::Kind;
    if (name == "all") m.kind = K::All;
    else if (name == "include") m.kind = K::Include;
    else if (name == "a") m.kind = K::A;
    else if (name == "mx") m.kind = K::Mx;
    else if (name == "ptr") m.kind = K::Ptr;
    else if (name == "ip4") m.kind = K::Ip4;
    else if (name == "ip6") m.kind = K::Ip6;
    else if (name == "exists") m.kind = K::Exists;
    else return permerror("unknown mechanism '" + std::string(term) + "'");
    const bool has_colon = arg.starts_with(":");
    switch (m.kind) {
      case K::All:
        if (!arg.empty()) return permerror("all takes no argument");
        break;
      case K::Include:
      case K::Exists:
        if (!has_colon || !domain_spec_ok(arg.substr(1))) return permerror(name + " needs :domain-spec");
        m.domain_spec = std::string(arg.substr(1));
        break;
      case K::A:
      case K::Mx: {
        if (Status st = dual_cidr(arg, m); !st.ok()) return st;
        if (has_colon) {
          if (!domain_spec_ok(arg.substr(1))) return permerror(name + ": is not a domain-spec");
          m.domain_spec = std::string(arg.substr(1));
        } else if (!arg.empty()) {
          return permerror("unexpected text after " + name);
        }
        break;
      }
      case K::Ptr:
        if (has_colon) {
          if (!domain_spec_ok(arg.substr(1))) return permerror("ptr: is not a domain-spec");
          m.domain_spec = std::string(arg.substr(1));
        } else if (!arg.empty()) {
          return permerror("unexpected text after ptr");
        }
        break;
      case K::Ip4:
      case K::Ip6: {
        if (!has_colon) return permerror(name + " needs :network");
        arg.remove_prefix(1);
        const std::size_t slash = arg.find('/');
        const std::string_view net = arg.substr(0, slash);
        auto ip = parse_ip(net);
        if (!ip || ip->v6 != (m.kind == K::Ip6)) return permerror(name + ": is not an address of its family");
        m.network = *ip;
        if (slash != std::string_view::npos) {
          auto c = cidr(arg.substr(slash + 1), m.kind == K::Ip6 ? 128 : 32);
          if (!c) return permerror(name + ": the CIDR length is out of range");
          (m.kind == K::Ip6 ? m.cidr6 : m.cidr4) = *c;
        }
        break;
      }
    }
    rec.mechanisms.push_back(std::move(m));
  }
  return rec;
}

Result<std::string> expand(std::string_view s, const MacroContext& ctx, bool explanation) {
  if (!macro_string_ok(s, explanation)) return permerror("not a well-formed macro-string");
  const std::string sender = ctx.sender;
  const std::size_t at_sign = sender.rfind('@');
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '%') {
      out += s[i++];
      continue;
    }
    const Macro m = *read_macro(s, i, explanation);
    i = m.end;
    if (!m.letter) {
      out += m.literal ? std::string(1, m.literal) : std::string("%20");  // "%-" is "%20"
      continue;
    }
    std::string value;
    switch (proto::ascii_lower(std::string_view(&m.letter, 1))[0]) {
      case 's': value = sender; break;
      case 'l': value = at_sign == std::string::npos ? "postmaster" : sender.substr(0, at_sign); break;
      case 'o': value = at_sign == std::string::npos ? sender : sender.substr(at_sign + 1); break;
      case 'd': value = ctx.domain; break;
      case 'i': value = macro_ip(ctx.ip); break;
      case 'p': value = ctx.validated_ptr; break;
      case 'v': value = ctx.ip.v6 ? "ip6" : "in-addr"; break;
      case 'h': value = ctx.helo; break;
      case 'c': value = readable_ip(ctx.ip); break;
      case 'r': value = ctx.receiver.empty() ? "unknown" : ctx.receiver; break;
      case 't': value = std::to_string(ctx.timestamp); break;
    }
    // RFC 7208 7.3: split on the delimiters (default "."), reverse, keep the rightmost N,
    // join with ".".
    const std::string delims = m.delimiters.empty() ? "." : m.delimiters;
    std::vector<std::string> parts;
    std::size_t from = 0;
    for (std::size_t j = 0; j <= value.size(); ++j) {
      if (j == value.size() || delims.find(value[j]) != std::string::npos) {
        parts.push_back(value.substr(from, j - from));
        from = j + 1;
      }
    }
    if (m.reverse) std::reverse(parts.begin(), parts.end());
    if (m.keep && m.keep < parts.size()) parts.erase(parts.begin(), parts.end() - static_cast<std::ptrdiff_t>(m.keep));
    std::string joined;
    for (std::size_t j = 0; j < parts.size(); ++j) joined += (j ? "." : "") + parts[j];
    out += alpha(m.letter) && m.letter >= 'A' && m.letter <= 'Z' ? url_encode(joined) : joined;
  }
  if (!explanation) {
    // RFC 7208 7.3: a result over 253 octets loses labels from the left until it fits.
    while (out.size() > 253) {
      const std::size_t dot = out.find('.');
      if (dot == std::string::npos) return permerror("the expanded domain is longer than 253 octets");
      out.erase(0, dot + 1);
    }
  }
  return out;
}

}  // namespace cmail::mail::spf
