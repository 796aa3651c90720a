// The one SMTP codec: replies, paths, MAIL/RCPT parameters, xtext. Used by the server engine,
// the client engine and the queue.
#include <cmail/smtp/syntax.h>

#include <cmail/proto/ascii.h>

#include <algorithm>
#include <charconv>

namespace cmail::smtp {

namespace {

bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// RFC 5322 3.2.3 atext; RFC 6531 3.3 adds UTF8-non-ascii.
bool is_atext(unsigned char c, bool utf8) {
  if (is_alpha(c) || is_digit(c)) return true;
  if (c >= 0x80) return utf8;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// Well-formed UTF-8 (RFC 3629), so that no overlong or truncated sequence reaches a database.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    if (n == 2 && c < 0xC2) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    if (n == 3) {
      auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return false;
    }
    if (n == 4) {
      auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xF0 && c1 < 0x90) || c > 0xF4 || (c == 0xF4 && c1 >= 0x90)) return false;
    }
    i += n;
  }
  return true;
}

bool valid_ipv4(std::string_view s) {
  int parts = 0;
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t j = s.find('.', i);
    if (j == std::string_view::npos) j = s.size();
    std::string_view p = s.substr(i, j - i);
    if (p.empty() || p.size() > 3) return false;
    unsigned v = 0;
    for (char ch : p) {
      if (!is_digit(static_cast<unsigned char>(ch))) return false;
      v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v > 255) return false;
    ++parts;
    i = j + 1;
    if (j == s.size()) break;
  }
  return parts == 4;
}

// RFC 5321 4.1.3 address literals: IPv4, "IPv6:" and General-address-literal.
bool valid_address_literal(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  std::string_view in = s.substr(1, s.size() - 2);
  if (valid_ipv4(in)) return true;
  auto colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view tag = in.substr(0, colon), content = in.substr(colon + 1);
  for (char ch : tag)
    if (!is_alpha(static_cast<unsigned char>(ch)) && !is_digit(static_cast<unsigned char>(ch)) && ch != '-')
      return false;
  if (content.empty()) return false;
  // dcontent, but for '>': a path holding one could not be sent back between angle brackets
  // (the liberal form would take "a@[x:>]", which no bracketed path can carry).
  for (unsigned char ch : content)
    if (ch < 33 || ch > 126 || ch == '[' || ch == ']' || ch == '\\' || ch == '>') return false;
  return true;  // IPv6 and general literals: dcontent checked; routing never relays to them
}

Reply error(int code, EnhancedCode e, std::string text) { return reply(code, e, std::move(text)); }

// A-d-l ":" (source route, RFC 5321 4.1.2 and appendix C) from the '@' at s[i], its ':' before
// `limit`: each "@domain" checked, `i` left just past the ':'. False if malformed.
bool skip_source_route(std::string_view s, std::size_t& i, std::size_t limit, bool utf8) {
  std::size_t colon = s.find(':', i);
  if (colon == std::string_view::npos || colon > limit) return false;
  for (std::size_t k = i; k < colon;) {
    std::size_t comma = std::min(s.find(',', k), colon);
    if (s[k] != '@' || !valid_domain(s.substr(k + 1, comma - k - 1), utf8)) return false;
    k = comma + 1;
  }
  i = colon + 1;
  return true;
}

// A Quoted-string from the '"' at s[i] (RFC 5321 4.1.2: qtextSMTP, quoted-pairSMTP), appended
// unquoted to `out`; `i` left just past the closing quote. False if invalid or unterminated.
bool read_quoted(std::string_view s, std::size_t& i, bool utf8, std::string& out) {
  for (++i; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      ++i;
      return true;
    }
    if (c == '\\') {  // quoted-pairSMTP = %d92 %d32-126
      if (++i >= s.size()) return false;
      c = static_cast<unsigned char>(s[i]);
      if (c < 32 || c > 126) return false;
    } else if (c < 32 || c == 127 || (c >= 0x80 && !utf8)) {  // qtextSMTP
      return false;
    }
    out += static_cast<char>(c);
  }
  return false;
}

// Parses "<...>" at the start of s; returns the path and how many bytes it used.
std::optional<std::pair<Path, std::size_t>> parse_bracketed(std::string_view s, bool allow_null,
                                                            const SyntaxOptions& o) {
  if (s.empty() || s[0] != '<') return std::nullopt;
  std::size_t i = 1;
  if (allow_null && s.size() >= 2 && s[1] == '>') return std::make_pair(Path{}, std::size_t{2});
  // A source route is accepted and ignored (RFC 5321 4.1.2, appendix C).
  if (i < s.size() && s[i] == '@' && !skip_source_route(s, i, s.find('>', i), o.utf8)) return std::nullopt;
  Path p;
  // Local-part = Dot-string / Quoted-string.
  if (i < s.size() && s[i] == '"') {
    if (!read_quoted(s, i, o.utf8, p.local)) return std::nullopt;
  } else {
    std::size_t start = i;
    bool dot_ok = false;  // a dot may follow an atext, never lead, double or trail
    while (i < s.size() && s[i] != '@' && s[i] != '>') {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '.') {
        if (!dot_ok) return std::nullopt;
        dot_ok = false;
      } else if (is_atext(c, o.utf8)) {
        dot_ok = true;
      } else {
        return std::nullopt;
      }
      ++i;
    }
    if (i == start || !dot_ok) return std::nullopt;
    p.local = std::string(s.substr(start, i - start));
  }
  if (i < s.size() && s[i] == '>') {
    // "<Postmaster>" without a domain (RFC 5321 4.1.1.3); any other bare local part is invalid.
    std::string lower;
    for (char ch : p.local) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower != "postmaster") return std::nullopt;
    return std::make_pair(p, i + 1);
  }
  if (i >= s.size() || s[i] != '@') return std::nullopt;
  ++i;
  std::size_t close = s.find('>', i);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view domain = s.substr(i, close - i);
  bool ok = domain.starts_with('[') ? valid_address_literal(domain) : valid_domain(domain, o.utf8);
  if (!ok) return std::nullopt;
  p.domain = std::string(domain);
  if (p.utf8() && !valid_utf8(p.local + p.domain)) return std::nullopt;
  // RFC 5321 4.5.3.1.3: a path is at most 256 octets (we allow longer local parts, 4.5.3.1).
  if (p.local.size() > 256 || p.domain.size() > 255) return std::nullopt;
  return std::make_pair(p, close + 1);
}

// The text after "MAIL FROM:" / "RCPT TO:": clients commonly put a space after the colon
// (against RFC 5321 4.1.1.2), which both modes accept.
std::string_view skip_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

// The liberal forms (SyntaxOptions::strict off, docs/compatibility.md#routing-paths).

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// From the '"' at s[i] to just past its closing quote (RFC 5322 3.2.4, quoted-pairs); npos if
// unterminated.
std::size_t skip_quoted(std::string_view s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

// From the '(' at s[i] to just past its closing ')' (RFC 5322 3.2.2: comments nest and hold
// quoted-pairs); npos if unterminated.
std::size_t skip_comment(std::string_view s, std::size_t i) {
  int depth = 0;
  for (; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '(') ++depth;
    else if (s[i] == ')' && --depth == 0) return i + 1;
  }
  return std::string_view::npos;
}

// Just past the quoted string, the comment or the one character at s[i]; npos if unterminated.
std::size_t skip_unit(std::string_view s, std::size_t i) {
  return s[i] == '"' ? skip_quoted(s, i) : s[i] == '(' ? skip_comment(s, i) : i + 1;
}

// Skips white space and comments (CFWS); false on an unterminated comment.
bool skip_cfws(std::string_view s, std::size_t& i) {
  while (i < s.size()) {
    if (is_wsp(s[i])) {
      ++i;
    } else if (s[i] == '(') {
      i = skip_comment(s, i);
      if (i == std::string_view::npos) return false;
    } else {
      break;
    }
  }
  return true;
}

// The text with its comments removed (quoted strings kept whole); nullopt on an unterminated
// comment or quote, or a ')' that closes nothing.
std::optional<std::string> strip_comments(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '(') {
      i = skip_comment(s, i);
      if (i == std::string_view::npos) return std::nullopt;
    } else if (s[i] == ')') {
      return std::nullopt;
    } else if (s[i] == '"') {
      std::size_t end = skip_quoted(s, i);
      if (end == std::string_view::npos) return std::nullopt;
      out.append(s.substr(i, end - i));
      i = end;
    } else if (s[i] == '\\' && i + 1 < s.size()) {
      out.append(s.substr(i, 2));
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// An address without its brackets, comments already removed: [source route] local-part
// ["@" domain]. The local part is words (atoms, quoted strings, backslash-escaped characters)
// and dots in any order, RFC 5322 4.4 obs-local-part and the dots real mailers send; white
// space only at the ends and around the '@'. The domain is checked as strictly as ever.
std::optional<Path> parse_liberal_address(std::string_view s, bool allow_null, const SyntaxOptions& o) {
  std::size_t i = 0;
  while (i < s.size() && is_wsp(s[i])) ++i;
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  if (i == s.size()) {
    if (!allow_null) return std::nullopt;
    return Path{};
  }
  if (s[i] == '@' && !skip_source_route(s, i, s.size(), o.utf8)) return std::nullopt;  // ignored
  Path p;
  bool word_last = false;  // two words need a dot between them
  while (i < s.size() && s[i] != '@' && !is_wsp(s[i])) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      p.local += '.';
      word_last = false;
      ++i;
      continue;
    }
    if (word_last && c == '"') return std::nullopt;
    if (c == '"') {
      if (!read_quoted(s, i, o.utf8, p.local)) return std::nullopt;
      word_last = true;
      if (i < s.size() && s[i] != '.' && s[i] != '@' && !is_wsp(s[i])) return std::nullopt;
      continue;
    }
    if (c == '\\') {  // an escaped printable character outside quotes, as cmail took it
      if (i + 1 >= s.size()) return std::nullopt;
      auto e = static_cast<unsigned char>(s[i + 1]);
      if (e < 32 || e > 126) return std::nullopt;
      p.local += static_cast<char>(e);
      i += 2;
    } else if (is_atext(c, o.utf8)) {
      p.local += static_cast<char>(c);
      ++i;
    } else {
      return std::nullopt;
    }
    word_last = true;
  }
  while (i < s.size() && is_wsp(s[i])) ++i;
  if (p.local.empty()) return std::nullopt;
  if (i < s.size()) {
    if (s[i] != '@') return std::nullopt;
    ++i;
    while (i < s.size() && is_wsp(s[i])) ++i;
    std::string_view domain = s.substr(i);
    bool ok = domain.starts_with('[') ? valid_address_literal(domain) : valid_domain(domain, o.utf8);
    if (!ok) return std::nullopt;
    p.domain = std::string(domain);
  }
  if (p.utf8() && !valid_utf8(p.local + p.domain)) return std::nullopt;
  if (p.local.size() > 256 || p.domain.size() > 255) return std::nullopt;  // as strict paths
  return p;
}

// A MAIL or RCPT argument in the liberal form: "<addr>", "display name <addr>" or "addr",
// each with comments around, then the parameters. Returns the path and the parameter text.
std::optional<std::pair<Path, std::string_view>> parse_liberal(std::string_view s, bool allow_null,
                                                               const SyntaxOptions& o) {
  std::size_t i = 0;
  if (!skip_cfws(s, i)) return std::nullopt;
  // A display name (RFC 5322 3.4 name-addr) is words, dots, white space and comments up to the
  // '<'. An '@' or '=' before any '<' means there is no name: "a@b AUTH=<>", "root AUTH=<>".
  std::size_t open = std::string_view::npos;
  for (std::size_t k = i; k < s.size();) {
    auto c = static_cast<unsigned char>(s[k]);
    if (c == '<') {
      open = k;
      break;
    }
    if (c == '"') {
      k = skip_quoted(s, k);
    } else if (c == '(') {
      k = skip_comment(s, k);
    } else if (is_wsp(s[k]) || c == '.' || (c != '=' && is_atext(c, o.utf8))) {
      ++k;
      continue;
    } else {
      break;
    }
    if (k == std::string_view::npos) return std::nullopt;
  }
  std::size_t end;  // just past the address
  std::string_view inner;
  if (open != std::string_view::npos) {
    end = open + 1;
    while (end < s.size() && s[end] != '>') {
      std::size_t next = skip_unit(s, end);
      if (next == std::string_view::npos) return std::nullopt;
      end = next;
    }
    if (end >= s.size()) return std::nullopt;
    inner = s.substr(open + 1, end - open - 1);
    ++end;
  } else {
    end = i;
    while (end < s.size() && !is_wsp(s[end])) {
      std::size_t next = skip_unit(s, end);
      if (next == std::string_view::npos) return std::nullopt;
      end = next;
    }
    inner = s.substr(i, end - i);
    if (inner.empty()) return std::nullopt;  // "<>" needs its brackets
  }
  auto text = strip_comments(inner);
  if (!text) return std::nullopt;
  auto path = parse_liberal_address(*text, allow_null, o);
  if (!path) return std::nullopt;
  // Comments may follow the address; the parameters are what comes after them.
  std::size_t rest = end;
  if (!skip_cfws(s, rest)) return std::nullopt;
  if (rest < s.size() && rest == end) return std::nullopt;  // "<a@b>x": no separator
  return std::make_pair(std::move(*path), s.substr(rest));
}

// The path and the parameter text of a MAIL or RCPT argument, strictly or liberally; the strict
// form is tried first, so a valid RFC 5321 path means the same in both modes.
std::optional<std::pair<Path, std::string_view>> parse_envelope(std::string_view arg, bool allow_null,
                                                                const SyntaxOptions& o) {
  arg = skip_spaces(arg);
  if (auto r = parse_bracketed(arg, allow_null, o)) {
    std::string_view rest = arg.substr(r->second);
    std::size_t params = 0;  // comments before the parameters, liberally
    if ((rest.empty() || rest.front() == ' ') && (o.strict || skip_cfws(rest, params)))
      return std::make_pair(std::move(r->first), rest.substr(params));
  }
  if (o.strict) return std::nullopt;
  return parse_liberal(arg, allow_null, o);
}

// Splits " KEY=VALUE KEY2" into (key, value) pairs. Keys are compared case-insensitively.
struct Param {
  std::string key;  // upper case
  std::optional<std::string> value;
};

std::optional<std::vector<Param>> split_params(std::string_view s) {
  std::vector<Param> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
      continue;
    }
    std::size_t end = s.find(' ', i);
    if (end == std::string_view::npos) end = s.size();
    std::string_view tok = s.substr(i, end - i);
    Param p;
    auto eq = tok.find('=');
    std::string_view key = tok.substr(0, eq);
    if (key.empty()) return std::nullopt;
    for (char ch : key) {
      auto c = static_cast<unsigned char>(ch);
      if (!is_alpha(c) && !is_digit(c) && c != '-') return std::nullopt;  // esmtp-keyword
      p.key += static_cast<char>(std::toupper(c));
    }
    if (eq != std::string_view::npos) {
      std::string_view v = tok.substr(eq + 1);
      for (unsigned char c : v)
        if (c < 33 || c == 127) return std::nullopt;  // esmtp-value (UTF-8 allowed, RFC 6531)
      p.value = std::string(v);
    }
    out.push_back(std::move(p));
    i = end;
  }
  return out;
}


}  // namespace

std::string EnhancedCode::to_string() const {
  return std::to_string(klass) + "." + std::to_string(subject) + "." + std::to_string(detail);
}

Reply reply(int code, EnhancedCode enhanced, std::string text) {
  Reply r;
  r.code = code;
  r.enhanced = enhanced;
  r.lines.push_back(std::move(text));
  return r;
}

std::string Reply::format() const {
  std::string out;
  std::string prefix = std::to_string(code);
  std::string enh = enhanced ? enhanced->to_string() + " " : "";
  if (lines.empty()) return prefix + " " + enh + "\r\n";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += prefix;
    out += i + 1 < lines.size() ? '-' : ' ';
    // RFC 2034 2: every line carries the enhanced code, also in multi-line replies.
    out += enh;
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

std::string Reply::summary() const {
  std::string out = std::to_string(code);
  if (enhanced) out += " " + enhanced->to_string();
  if (!lines.empty()) out += " " + lines.back();
  return out;
}

Result<std::optional<Reply>> ReplyParser::feed(std::string_view line) {
  // RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF
  if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
      line[0] < '2' || line[0] > '5')
    return Status::invalid_argument("malformed reply line");
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  bool last = line.size() == 3 || line[3] == ' ';
  if (!last && line[3] != '-') return Status::invalid_argument("malformed reply line");
  std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
  if (!partial_) {
    partial_ = Reply{};
    partial_->code = code;
  } else if (partial_->code != code) {
    partial_.reset();
    return Status::invalid_argument("reply code changed within a multi-line reply");
  }
  // RFC 3463 enhanced code at the start of the text: class.subject.detail with class 2, 4, 5.
  std::optional<EnhancedCode> enh;
  if (text.size() >= 5 && (text[0] == '2' || text[0] == '4' || text[0] == '5') && text[1] == '.') {
    int v[3] = {};
    const char* p = text.data();
    const char* end = text.data() + text.size();
    bool ok = true;
    for (int k = 0; k < 3 && ok; ++k) {
      auto [next, ec] = std::from_chars(p, end, v[k]);
      ok = ec == std::errc() && next != p && (k == 2 ? (next == end || *next == ' ') : (next < end && *next == '.'));
      p = next + (k < 2 ? 1 : 0);
    }
    if (ok && v[0] == code / 100) {
      enh = EnhancedCode{v[0], v[1], v[2]};
      text.remove_prefix(static_cast<std::size_t>(p - text.data()));
      if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
  }
  if (enh) partial_->enhanced = enh;
  partial_->lines.emplace_back(text);
  if (!last) return std::optional<Reply>();
  std::optional<Reply> done = std::move(partial_);
  partial_.reset();
  return done;
}

std::string Path::address() const {
  if (domain.empty()) return local;
  return local + "@" + domain;
}

Path Path::from_address(std::string_view address) {
  Path p;
  std::size_t at = address.rfind('@');
  std::string_view local = address.substr(0, at == std::string_view::npos ? address.size() : at);
  if (local.size() >= 2 && local.front() == '"' && local.back() == '"') {
    // The wire form (to_wire()): a Quoted-string, RFC 5321 4.1.2; its escapes resolved.
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
      if (local[i] == '\\' && i + 2 < local.size()) ++i;
      p.local += local[i];
    }
  } else {
    p.local = std::string(local);  // cmail's unquoted form, or a Dot-string
  }
  if (at != std::string_view::npos) p.domain = std::string(address.substr(at + 1));
  return p;
}

std::string Path::to_wire() const {
  if (null()) return "";
  bool dot_string = !local.empty() && local.front() != '.' && local.back() != '.' &&
                    local.find("..") == std::string::npos;
  for (unsigned char c : local)
    if (c != '.' && !is_atext(c, true)) dot_string = false;
  std::string l;
  if (dot_string) {
    l = local;
  } else {
    l = "\"";
    for (char c : local) {
      if (c == '"' || c == '\\') l += '\\';
      l += c;
    }
    l += '"';
  }
  return domain.empty() ? l : l + "@" + domain;
}

bool Path::utf8() const {
  for (unsigned char c : local + domain)
    if (c >= 0x80) return true;
  return false;
}

bool valid_domain(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > 255) return false;
  if (d.front() == '[') return valid_address_literal(d);
  // Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] (RFC 5321 4.1.2);
  // U-labels (RFC 6531 3.3) when utf8. No empty label, so no trailing dot.
  std::size_t start = 0;
  while (start <= d.size()) {
    std::size_t dot = d.find('.', start);
    if (dot == std::string_view::npos) dot = d.size();
    std::string_view label = d.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    for (std::size_t k = 0; k < label.size(); ++k) {
      auto c = static_cast<unsigned char>(label[k]);
      bool letdig = is_alpha(c) || is_digit(c) || (c >= 0x80 && utf8);
      if (!letdig && !(c == '-' && k > 0 && k + 1 < label.size())) return false;
    }
    if (dot == d.size()) break;
    start = dot + 1;
  }
  return !utf8 || valid_utf8(d);
}

std::optional<Path> parse_path(std::string_view text, bool allow_null, const SyntaxOptions& o) {
  auto r = parse_bracketed(text, allow_null, o);
  if (!r || r->second != text.size()) return std::nullopt;
  return r->first;
}

std::optional<std::string> xtext_decode(std::string_view s) {
  // RFC 3461 4: xtext = *( xchar / hexchar ); hexchar = "+" 2(%x30-39 / %x41-46)
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size()) return std::nullopt;
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c >= 33 && c <= 126 && c != '=') {
      out += static_cast<char>(c);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string xtext_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::variant<MailCommand, SyntaxError> parse_mail_from(std::string_view arg, const SyntaxOptions& o) {
  auto r = parse_envelope(arg, true, o);
  if (!r) return SyntaxError{error(501, {5, 1, 7}, "Bad sender address syntax")};
  MailCommand m{std::move(r->first), {}};
  auto params = split_params(r->second);
  if (!params) return SyntaxError{error(501, {5, 5, 4}, "Malformed parameters")};
  auto bad = [](std::string what) { return SyntaxError{error(501, {5, 5, 4}, "Invalid " + what + " parameter")}; };
  bool seen_size = false, seen_body = false;
  for (const Param& p : *params) {
    if (p.key == "SIZE") {  // RFC 1870 6
      if (seen_size || !p.value || p.value->empty() || p.value->size() > 20) return bad("SIZE");
      std::uint64_t v = 0;
      auto [ptr, ec] = std::from_chars(p.value->data(), p.value->data() + p.value->size(), v);
      if (ec != std::errc() || ptr != p.value->data() + p.value->size()) return bad("SIZE");
      m.params.size = v;
      seen_size = true;
    } else if (p.key == "BODY") {  // RFC 6152 2, RFC 3030 3
      if (seen_body || !p.value) return bad("BODY");
      std::string v = proto::ascii_upper(*p.value);
      if (v == "7BIT") m.params.body = BodyType::SevenBit;
      else if (v == "8BITMIME") m.params.body = BodyType::EightBitMime;
      else if (v == "BINARYMIME") m.params.body = BodyType::BinaryMime;
      else return bad("BODY");
      seen_body = true;
    } else if (p.key == "SMTPUTF8") {  // RFC 6531 3.4: no value
      if (p.value || m.params.smtputf8) return bad("SMTPUTF8");
      m.params.smtputf8 = true;
    } else if (p.key == "REQUIRETLS") {  // RFC 8689 3: no value
      if (p.value || m.params.requiretls) return bad("REQUIRETLS");
      m.params.requiretls = true;
    } else if (p.key == "RET") {  // RFC 3461 4.3
      if (m.params.ret || !p.value) return bad("RET");
      std::string v = proto::ascii_upper(*p.value);
      if (v != "FULL" && v != "HDRS") return bad("RET");
      m.params.ret = v;
    } else if (p.key == "ENVID") {  // RFC 3461 4.4: at most 100 characters
      if (m.params.envid || !p.value || p.value->size() > 100) return bad("ENVID");
      auto v = xtext_decode(*p.value);
      if (!v) return bad("ENVID");
      m.params.envid = *v;
    } else if (p.key == "AUTH") {  // RFC 4954 5
      if (m.params.auth || !p.value) return bad("AUTH");
      auto v = xtext_decode(*p.value);
      if (!v) return bad("AUTH");
      m.params.auth = *v;
    } else {
      return SyntaxError{error(555, {5, 5, 4}, "Unsupported parameter " + p.key)};
    }
  }
  // RFC 6531 3.4: a UTF-8 path needs the SMTPUTF8 parameter.
  if (m.path.utf8() && !m.params.smtputf8)
    return SyntaxError{error(553, {5, 6, 7}, "Non-ASCII address requires SMTPUTF8")};
  return m;
}

std::variant<RcptCommand, SyntaxError> parse_rcpt_to(std::string_view arg, const SyntaxOptions& o) {
  auto r = parse_envelope(arg, false, o);
  if (!r) return SyntaxError{error(501, {5, 1, 3}, "Bad recipient address syntax")};
  RcptCommand c{std::move(r->first), {}};
  auto params = split_params(r->second);
  if (!params) return SyntaxError{error(501, {5, 5, 4}, "Malformed parameters")};
  auto bad = [](std::string what) { return SyntaxError{error(501, {5, 5, 4}, "Invalid " + what + " parameter")}; };
  for (const Param& p : *params) {
    if (p.key == "NOTIFY") {  // RFC 3461 4.1
      if (c.params.notify || !p.value) return bad("NOTIFY");
      std::string v = proto::ascii_upper(*p.value);
      if (v != "NEVER") {
        std::size_t i = 0;
        while (i <= v.size()) {
          std::size_t comma = v.find(',', i);
          if (comma == std::string::npos) comma = v.size();
          std::string item = v.substr(i, comma - i);
          if (item != "SUCCESS" && item != "FAILURE" && item != "DELAY") return bad("NOTIFY");
          if (comma == v.size()) break;
          i = comma + 1;
        }
      }
      c.params.notify = v;
    } else if (p.key == "ORCPT") {  // RFC 3461 4.2: addr-type ";" xtext
      if (c.params.orcpt || !p.value) return bad("ORCPT");
      auto semi = p.value->find(';');
      if (semi == std::string::npos || semi == 0) return bad("ORCPT");
      auto v = xtext_decode(std::string_view(*p.value).substr(semi + 1));
      if (!v) return bad("ORCPT");
      c.params.orcpt = p.value->substr(0, semi) + ";" + *v;
    } else {
      return SyntaxError{error(555, {5, 5, 4}, "Unsupported parameter " + p.key)};
    }
  }
  return c;
}

std::string format_mail_params(const MailParams& p) {
  std::string out;
  if (p.size) out += " SIZE=" + std::to_string(*p.size);
  if (p.body == BodyType::EightBitMime) out += " BODY=8BITMIME";
  if (p.body == BodyType::BinaryMime) out += " BODY=BINARYMIME";
  if (p.smtputf8) out += " SMTPUTF8";
  if (p.ret) out += " RET=" + *p.ret;
  if (p.envid) out += " ENVID=" + xtext_encode(*p.envid);
  if (p.auth) out += " AUTH=" + xtext_encode(*p.auth);
  if (p.requiretls) out += " REQUIRETLS";  // RFC 8689 3
  return out;
}

std::string format_rcpt_params(const RcptParams& p) {
  std::string out;
  if (p.notify) out += " NOTIFY=" + *p.notify;
  if (p.orcpt) {
    auto semi = p.orcpt->find(';');
    out += " ORCPT=" + p.orcpt->substr(0, semi + 1) + xtext_encode(p.orcpt->substr(semi + 1));
  }
  return out;
}

}  // namespace cmail::smtp
