// SPF records, macros and addresses. See cmail/mail/spf.h.
#include <cmail/mail/spf.h>

#include <cmail/proto/ascii.h>

#include <algorithm>
#include <memory>

namespace cmail::mail::spf {

namespace {

using proto::is_alnum, proto::is_alpha, proto::is_digit;

int hex(char c) {
  if (is_digit(c)) return c - '0';
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
    while (end < s.size() && is_digit(s[end])) ++end;
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
    if (!is_alnum(c) && c != '-') return false;
    letter = letter || is_alpha(c) || c == '-';
  }
  return letter;
}

bool macro_letter(char c, bool explanation) {
  switch (proto::ascii_lower(c)) {
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
  while (i < s.size() && is_digit(s[i])) {
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
    if (!is_digit(c)) return std::nullopt;
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
      std::all_of(arg.begin() + static_cast<std::ptrdiff_t>(d) + 1, arg.end(), is_digit)) {
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
    if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {  // RFC 3986 2.3 unreserved
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
    while (n < term.size() && (is_alnum(term[n]) || term[n] == '-' || term[n] == '_' || term[n] == '.')) ++n;
    if (n > 0 && is_alpha(term[0]) && n < term.size() && term[n] == '=') {
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
    while (k < term.size() && is_alnum(term[k])) ++k;
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
    switch (proto::ascii_lower(m.letter)) {
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
    out += m.letter >= 'A' && m.letter <= 'Z' ? url_encode(joined) : joined;  // upper case: URL-encoded
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

const char* to_string(Answer r) {
  switch (r) {
    case Answer::None: return "none";
    case Answer::Neutral: return "neutral";
    case Answer::Pass: return "pass";
    case Answer::Fail: return "fail";
    case Answer::SoftFail: return "softfail";
    case Answer::TempError: return "temperror";
    case Answer::PermError: return "permerror";
  }
  return "none";
}

namespace {

// RFC 7208 4.3: a domain check_host can look up: dot-separated labels of 1-63 octets, at
// most 253 in all (a trailing dot allowed), and more than one label.
bool checkable_domain(std::string_view d) {
  if (d.ends_with(".")) d.remove_suffix(1);
  if (d.empty() || d.size() > 253 || d.find('.') == std::string_view::npos) return false;
  std::size_t at = 0;
  while (at <= d.size()) {
    const std::size_t dot = std::min(d.find('.', at), d.size());
    if (dot == at || dot - at > 63) return false;
    at = dot + 1;
  }
  return true;
}

Answer result_of(Qualifier q) {
  switch (q) {
    case Qualifier::Pass: return Answer::Pass;
    case Qualifier::Fail: return Answer::Fail;
    case Qualifier::SoftFail: return Answer::SoftFail;
    case Qualifier::Neutral: return Answer::Neutral;
  }
  return Answer::Neutral;
}

// One check_host() evaluation with its nested include and redirect frames; the counters of
// RFC 7208 4.6.4 are the evaluation's, across all frames.
class Evaluation : public std::enable_shared_from_this<Evaluation> {
 public:
  Evaluation(Resolver& r, const Ip& ip, std::string sender, std::string helo, Limits limits)
      : resolver_(r), ip_(ip), sender_(std::move(sender)), helo_(std::move(helo)), limits_(limits) {}

  using Done = std::function<void(Outcome)>;

  // RFC 7208 4.3-4.7 for `domain`.
  void check(const std::string& domain, Done done) {
    if (!checkable_domain(domain)) return done({Answer::None, "", "'" + domain + "' is not a domain name"});
    auto self = shared_from_this();
    resolver_.txt(domain, [self, domain, done = std::move(done)](TxtResult t) mutable {
      self->with_record(domain, std::move(t), std::move(done));
    });
  }

 private:
  struct Frame {
    std::string domain;
    Record record;
    std::size_t next = 0;
    Done done;
  };

  void with_record(const std::string& domain, TxtResult t, Done done) {
    // RFC 7208 4.4: a DNS error is temperror; no such name, or no records, is none.
    if (t.status == DnsStatus::TempFail) return done({Answer::TempError, "", "TXT " + domain + ": " + t.error});
    if (t.status != DnsStatus::Ok) return done({Answer::None, "", "no SPF record at " + domain});
    const std::string* found = nullptr;
    for (const std::string& txt : t.records) {
      if (!is_spf_record(txt)) continue;
      if (found) return done({Answer::PermError, "", "more than one SPF record at " + domain});  // 4.5
      found = &txt;
    }
    if (!found) return done({Answer::None, "", "no SPF record at " + domain});
    auto rec = parse_record(*found);
    if (!rec) return done({Answer::PermError, "", domain + ": " + rec.error().message()});
    auto f = std::make_shared<Frame>();
    f->domain = domain;
    f->record = std::move(*rec);
    f->done = std::move(done);
    run(f);
  }

  MacroContext macros(const std::string& domain) const {
    MacroContext c;
    c.sender = sender_;
    c.domain = domain;
    c.ip = ip_;
    c.helo = helo_;
    return c;
  }

  // The target of a mechanism or modifier: its domain-spec expanded, or the current domain.
  std::optional<std::string> target(const Frame& f, const std::string& spec) const {
    if (spec.empty()) return f.domain;
    auto e = expand(spec, macros(f.domain));
    if (!e) return std::nullopt;
    return *e;
  }

  // Counts a DNS-querying term (RFC 7208 4.6.4); false when that is one too many.
  bool count_term() { return ++dns_terms_ <= limits_.dns_terms; }
  // Counts a void lookup; false when that is one too many.
  bool count_void() { return ++voids_ <= limits_.void_lookups; }

  // Evaluates f's mechanisms from f->next until one matches or a lookup is needed.
  void run(const std::shared_ptr<Frame>& f) {
    using K = Mechanism::Kind;
    while (f->next < f->record.mechanisms.size()) {
      const Mechanism& m = f->record.mechanisms[f->next];
      switch (m.kind) {
        case K::All:
          return matched(f, m);
        case K::Ip4:
        case K::Ip6:
          if (same_network(ip_, m.network, ip_.v6 ? m.cidr6 : m.cidr4) && m.network.v6 == ip_.v6) return matched(f, m);
          ++f->next;
          continue;
        default:
          break;
      }
      if (!count_term()) return finish(f, {Answer::PermError, "", "more than " + std::to_string(limits_.dns_terms) + " DNS lookups"});
      auto t = target(*f, m.domain_spec);
      if (!t) return finish(f, {Answer::PermError, "", "a macro did not expand"});
      return lookup(f, m, *t);
    }
    // RFC 7208 6.1: no mechanism matched: redirect=, else neutral (4.7).
    if (f->record.redirect) {
      if (!count_term()) return finish(f, {Answer::PermError, "", "more than " + std::to_string(limits_.dns_terms) + " DNS lookups"});
      auto t = target(*f, *f->record.redirect);
      if (!t) return finish(f, {Answer::PermError, "", "redirect= did not expand"});
      auto self = shared_from_this();
      return check(*t, [self, f](Outcome o) {
        if (o.result == Answer::None) o = {Answer::PermError, "", "redirect= names a domain without SPF record"};
        f->done(std::move(o));  // the redirect's result, with its own explanation (6.2)
      });
    }
    finish(f, {Answer::Neutral, "", ""});
  }

  void no_match(const std::shared_ptr<Frame>& f) {
    ++f->next;
    run(f);
  }

  void matched(const std::shared_ptr<Frame>& f, const Mechanism& m) { finish(f, {result_of(m.qualifier), "", ""}); }

  // The frame's result; a fail with exp= looks up its explanation first (RFC 7208 6.2).
  void finish(const std::shared_ptr<Frame>& f, Outcome o) {
    if (o.result != Answer::Fail || !f->record.explanation) return f->done(std::move(o));
    auto name = expand(*f->record.explanation, macros(f->domain));
    if (!name || !checkable_domain(*name)) return f->done(std::move(o));
    auto self = shared_from_this();
    resolver_.txt(*name, [self, f, o](TxtResult t) mutable {
      // Any error, or not exactly one record: no explanation (6.2).
      if (t.status == DnsStatus::Ok && t.records.size() == 1) {
        MacroContext c = self->macros(f->domain);
        if (auto text = expand(t.records[0], c, true)) o.explanation = *text;
      }
      f->done(std::move(o));
    });
  }

  // An address lookup's answer for a and mx: does any address of the client's family match?
  bool any_match(const AddressResult& a, const Mechanism& m) const {
    for (const std::string& text : a.addresses) {
      auto ip = parse_ip(text);
      if (ip && ip->v6 == ip_.v6 && same_network(ip_, *ip, ip_.v6 ? m.cidr6 : m.cidr4)) return true;
    }
    return false;
  }

  // What a DNS answer says for the mechanism: temperror, a void lookup, or records.
  template <typename R>
  bool settled(const std::shared_ptr<Frame>& f, const R& r, const std::string& what) {
    if (r.status == DnsStatus::TempFail) {
      finish(f, {Answer::TempError, "", what + ": " + r.error});
      return true;
    }
    if (r.status != DnsStatus::Ok && !count_void()) {
      finish(f, {Answer::PermError, "", "more than " + std::to_string(limits_.void_lookups) + " void lookups"});
      return true;
    }
    return false;
  }

  void lookup(const std::shared_ptr<Frame>& f, const Mechanism& m, const std::string& name) {
    using K = Mechanism::Kind;
    auto self = shared_from_this();
    switch (m.kind) {
      case K::Include:
        // RFC 7208 5.2: pass matches; fail, softfail, neutral do not; temperror stays; permerror
        // and none are permerror.
        return check(name, [self, f, m](Outcome o) {
          switch (o.result) {
            case Answer::Pass: return self->matched(f, m);
            case Answer::Fail: case Answer::SoftFail: case Answer::Neutral: return self->no_match(f);
            case Answer::TempError: return self->finish(f, std::move(o));
            default: return self->finish(f, {Answer::PermError, "", "include: " + (o.problem.empty() ? "none" : o.problem)});
          }
        });
      case K::A:
        return resolver_.addresses(name, [self, f, m, name](AddressResult a) {
          if (self->settled(f, a, "A/AAAA " + name)) return;
          if (a.status == DnsStatus::Ok && self->any_match(a, m)) return self->matched(f, m);
          self->no_match(f);
        });
      case K::Exists:
        // RFC 7208 5.7: an A lookup, whatever the client's family; any answer matches.
        return resolver_.addresses(name, [self, f, m, name](AddressResult a) {
          if (self->settled(f, a, "A " + name)) return;
          for (const std::string& text : a.addresses)
            if (auto ip = parse_ip(text); ip && !ip->v6) return self->matched(f, m);
          self->no_match(f);
        });
      case K::Mx:
        return resolver_.mx(name, [self, f, m, name](MxResult r) {
          if (self->settled(f, r, "MX " + name)) return;
          if (r.status != DnsStatus::Ok || r.null_mx()) return self->no_match(f);
          // RFC 7208 4.6.4: at most 10 MX hosts are looked up, more is permerror.
          if (static_cast<int>(r.records.size()) > self->limits_.mx_hosts)
            return self->finish(f, {Answer::PermError, "", "MX " + name + " has more than " +
                                                               std::to_string(self->limits_.mx_hosts) + " hosts"});
          self->mx_hosts(f, m, std::make_shared<std::vector<MxRecord>>(std::move(r.records)), 0);
        });
      case K::Ptr:
        // The ptr mechanism (RFC 7208 5.5, "do not use") needs reverse lookups, which the
        // resolver interface does not make: it never matches here.
        return no_match(f);
      default:
        return no_match(f);
    }
  }

  // The addresses of each MX host in turn; a host whose lookup fails is skipped (RFC 7208
  // 4.6.4 counts only what is looked up; a temporary failure of one host is not the record's).
  void mx_hosts(const std::shared_ptr<Frame>& f, const Mechanism& m, std::shared_ptr<std::vector<MxRecord>> hosts,
                std::size_t i) {
    if (i >= hosts->size()) return no_match(f);
    auto self = shared_from_this();
    resolver_.addresses((*hosts)[i].host, [self, f, m, hosts, i](AddressResult a) {
      if (a.status == DnsStatus::Ok && self->any_match(a, m)) return self->matched(f, m);
      self->mx_hosts(f, m, hosts, i + 1);
    });
  }

  Resolver& resolver_;
  Ip ip_;
  std::string sender_, helo_;
  Limits limits_;
  int dns_terms_ = 0;
  int voids_ = 0;
};

}  // namespace

void check_host(Resolver& resolver, const Ip& ip, std::string_view domain, std::string_view sender,
                std::string_view helo, std::function<void(Outcome)> done, Limits limits) {
  Ip client = ip;
  // RFC 7208 5: an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
  static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (ip.v6 && std::equal(kMapped.begin(), kMapped.end(), ip.octets.begin())) {
    client = Ip{};
    std::copy_n(ip.octets.begin() + 12, 4, client.octets.begin());
  }
  std::string s(sender);
  if (s.empty() || s.front() == '@') s = "postmaster" + (s.empty() ? "@" + std::string(helo) : s);  // 4.3
  auto e = std::make_shared<Evaluation>(resolver, client, std::move(s), std::string(helo), limits);
  e->check(proto::ascii_lower(domain), std::move(done));
}

}  // namespace cmail::mail::spf
