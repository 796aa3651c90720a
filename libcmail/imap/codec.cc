// The one IMAP wire codec: character classes, the line Parser and its values, the typed
// helpers, sequence sets and the encoders. Used by the server engine and the client engine.
#include <cmail/imap/codec.h>

#include <cmail/proto/ascii.h>
#include <cmail/proto/sasl.h>

#include <algorithm>
#include <limits>

namespace cmail::imap {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits only, at most `max`; overflow-safe (the value is checked before each step).
std::optional<std::uint64_t> parse_digits(std::string_view s, std::uint64_t max) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

constexpr std::uint64_t kNumber64Max = std::numeric_limits<std::int64_t>::max();  // 2^63-1
constexpr std::uint64_t kNumberMax = std::numeric_limits<std::uint32_t>::max();   // 2^32-1

// What may start or continue the Parser's lenient atom outside a section (the header comment).
bool is_atom_token_char(char c) {
  return is_char(c) && !is_ctl(c) && c != '(' && c != ')' && c != '{' && c != ' ' && c != '"';
}

// "{N}" / "{N+}" at s[open] (the "{"), closing at the end of s. nullopt when malformed; `size`
// holds the digits' verdict separately so that the Parser can tell "too large" from "junk".
struct Braces {
  std::string_view digits;
  bool plus = false;
};
std::optional<Braces> split_braces(std::string_view s, std::size_t open) {
  if (s.size() < open + 3 || s.back() != '}') return std::nullopt;
  std::string_view in = s.substr(open + 1, s.size() - open - 2);
  Braces b;
  if (!in.empty() && in.back() == '+') {  // RFC 7888: literal = "{" number64 ["+"] "}"
    b.plus = true;
    in.remove_suffix(1);
  }
  if (in.empty() || !std::all_of(in.begin(), in.end(), is_digit)) return std::nullopt;
  b.digits = in;
  return b;
}

std::string literal_form(std::string_view s, bool binary) {
  std::string out = binary ? "~{" : "{";  // RFC 3516 4: literal8 = "~{" number64 "}" CRLF *OCTET
  out += std::to_string(s.size());
  out += "}\r\n";
  out += s;
  return out;
}

}  // namespace

bool is_atom(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_atom_char); }

bool is_astring_atom(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_astring_char);
}

bool is_tag(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tag_char); }

bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2) || c > 0xF4) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    auto c1 = n > 1 ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (n == 3 && ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0))) return false;  // overlong, surrogates
    if (n == 4 && ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90))) return false;  // overlong, > U+10FFFF
    i += n;
  }
  return true;
}

std::optional<std::uint32_t> parse_number(std::string_view s) {  // RFC 9051 9: number
  auto v = parse_digits(s, kNumberMax);
  if (!v) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

std::optional<std::uint32_t> parse_nz_number(std::string_view s) {  // RFC 9051 9: nz-number
  auto v = parse_number(s);
  if (!v || *v == 0) return std::nullopt;
  return v;
}

std::optional<std::uint64_t> parse_number64(std::string_view s) {  // RFC 9051 9: number64
  return parse_digits(s, kNumber64Max);
}

std::optional<LiteralAnnouncement> trailing_literal(std::string_view line) {
  std::size_t open = line.rfind('{');
  if (open == std::string_view::npos) return std::nullopt;
  auto b = split_braces(line, open);
  if (!b) return std::nullopt;
  auto n = parse_number64(b->digits);
  if (!n) return std::nullopt;
  LiteralAnnouncement a{*n, b->plus, false};
  std::size_t start = open;
  if (start > 0 && line[start - 1] == '~') {  // RFC 3516 4: literal8
    a.binary = true;
    --start;
  }
  if (start > 0 && line[start - 1] != ' ' && line[start - 1] != '(') return std::nullopt;
  return a;
}

// Values.

Value Value::atom(std::string_view s) {
  Value v;
  v.text = std::string(s);
  if (auto n = parse_number64(s)) {  // RFC 9051 9: number64
    v.kind = Kind::Number;
    v.number = *n;
  } else if (proto::equals_upper(s, "NIL")) {  // RFC 9051 9: nil = "NIL"
    v.kind = Kind::Nil;
  }
  return v;
}

Value Value::quoted(std::string_view s) {
  Value v;
  v.kind = Kind::Quoted;
  v.text = std::string(s);
  return v;
}

Value Value::literal(std::string_view s, bool binary) {
  Value v;
  v.kind = Kind::Literal;
  v.text = std::string(s);
  v.binary = binary;
  return v;
}

Value Value::nil() { return atom("NIL"); }

Value Value::list(std::vector<Value> items) {
  Value v;
  v.kind = Kind::List;
  v.items = std::move(items);
  return v;
}

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Syntax: return "Syntax";
    case ErrorKind::Incomplete: return "Incomplete";
    case ErrorKind::TooDeep: return "TooDeep";
    case ErrorKind::TooManyItems: return "TooManyItems";
    case ErrorKind::StringTooLong: return "StringTooLong";
    case ErrorKind::LiteralTooLarge: return "LiteralTooLarge";
    case ErrorKind::LiteralMinus: return "LiteralMinus";
    case ErrorKind::NulInLiteral: return "NulInLiteral";
  }
  return "?";
}

// The Parser.

void Parser::reset() {
  state_ = State::Line;
  top_.clear();
  open_.clear();
  need_separator_ = false;
  items_ = 0;
  announced_ = {};
  remaining_ = 0;
  error_ = {};
}

Parser::State Parser::fail(ErrorKind kind, std::string message) {
  error_ = Error{kind, std::move(message)};
  return state_ = State::Failed;
}

bool Parser::count_item() { return ++items_ <= options_.limits.max_items; }

std::vector<Value>& Parser::current() {
  std::vector<Value>* v = &top_;
  for (std::size_t i : open_) v = &(*v)[i].items;
  return *v;
}

Parser::State Parser::feed_line(std::string_view p) {
  if (state_ != State::Line) return fail(ErrorKind::Syntax, "line not expected");
  const Limits& lim = options_.limits;
  std::size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (need_separator_) {  // RFC 9051 9: values are separated by exactly one SP
      if (c == ')') {
        if (open_.empty()) return fail(ErrorKind::Syntax, "unbalanced parenthesis");
        open_.pop_back();
        ++i;
        continue;
      }
      if (c != ' ') return fail(ErrorKind::Syntax, "expected SP between values");
      if (++i == p.size()) return fail(ErrorKind::Syntax, "SP at the end of the line");
      if (p[i] == ' ') return fail(ErrorKind::Syntax, "two SP between values");
      if (p[i] == ')') return fail(ErrorKind::Syntax, "SP before \")\"");
      need_separator_ = false;
      continue;
    }
    need_separator_ = true;
    if (c == ')') {  // an empty list "()": anything else before ")" was a value
      if (open_.empty() || !current().empty()) return fail(ErrorKind::Syntax, "unbalanced parenthesis");
      open_.pop_back();
      ++i;
      continue;
    }
    if (!count_item()) return fail(ErrorKind::TooManyItems, "too many values in the line");
    if (c == '(') {  // RFC 9051 9: "(" ... ")" lists (flag-list, fetch attributes, ...)
      if (open_.size() >= lim.max_depth) return fail(ErrorKind::TooDeep, "lists nested too deeply");
      auto& cur = current();
      cur.push_back(Value::list({}));
      open_.push_back(cur.size() - 1);
      need_separator_ = false;
      if (++i < p.size() && p[i] == ' ') return fail(ErrorKind::Syntax, "SP after \"(\"");
      continue;
    }
    if (c == '"') {  // RFC 9051 9: quoted = DQUOTE *QUOTED-CHAR DQUOTE
      std::string s;
      bool eight_bit = false;
      for (++i;; ++i) {
        if (i >= p.size()) return fail(ErrorKind::Syntax, "unterminated quoted string");
        char q = p[i];
        if (q == '"') break;
        if (q == '\\') {  // RFC 9051 9: "\" quoted-specials
          if (++i >= p.size()) return fail(ErrorKind::Syntax, "unterminated quoted string");
          q = p[i];
          if (!is_quoted_special(q)) return fail(ErrorKind::Syntax, "bad escape in quoted string");
        } else if (q == '\0' || q == '\r' || q == '\n') {  // RFC 9051 9: TEXT-CHAR
          return fail(ErrorKind::Syntax, "CR, LF or NUL in quoted string");
        } else if (!is_char(q)) {  // RFC 9051 9: UTF8-2 / UTF8-3 / UTF8-4; RFC 3501 9: 7-bit
          if (!options_.utf8) return fail(ErrorKind::Syntax, "8-bit octet in quoted string");
          eight_bit = true;
        }
        if (s.size() >= lim.max_string) return fail(ErrorKind::StringTooLong, "string too long");
        s += q;
      }
      ++i;
      if (eight_bit && !is_utf8(s)) return fail(ErrorKind::Syntax, "quoted string is not UTF-8");
      current().push_back(Value::quoted(s));
      continue;
    }
    bool binary = c == '~' && i + 1 < p.size() && p[i + 1] == '{';  // RFC 3516 4: literal8
    if (c == '{' || binary) {  // RFC 9051 9: literal = "{" number64 ["+"] "}" CRLF *CHAR8
      std::size_t open = binary ? i + 1 : i;
      auto b = split_braces(p, open);
      if (!b) {
        if (p.find('}', open) == std::string_view::npos) return fail(ErrorKind::Syntax, "\"{\" without \"}\"");
        return fail(ErrorKind::Syntax, "bad literal announcement (it must end the line)");
      }
      auto n = parse_number64(b->digits);
      if (!n || *n > lim.max_literal) return fail(ErrorKind::LiteralTooLarge, "literal too large");
      announced_ = LiteralAnnouncement{*n, b->plus, binary};
      if (options_.literal_minus && literal_minus_refuses(announced_))  // RFC 7888: LITERAL-
        return fail(ErrorKind::LiteralMinus, "non-synchronizing literal over 4096 octets");
      current().push_back(Value::literal("", binary));
      remaining_ = *n;
      return state_ = State::Literal;
    }
    // The lenient atom (the header comment), with "[" ... "]" sections (RFC 9051 9: section,
    // resp-text-code).
    std::size_t start = i, depth = 0;
    for (; i < p.size(); ++i) {
      char a = p[i];
      if (depth == 0) {
        if (a == '[') ++depth;
        else if (a == ' ' || a == ')' || a == '(' || a == '"' || a == '{') break;
        else if (!is_atom_token_char(a)) return fail(ErrorKind::Syntax, "invalid character in atom");
      } else if (a == '[') {
        ++depth;
      } else if (a == ']') {
        --depth;
      } else if (a == '"') {  // a quoted string inside a section: "]" in it closes nothing
        for (++i; i < p.size() && p[i] != '"'; ++i) {
          if (p[i] == '\\') ++i;
          if (i < p.size() && (p[i] == '\0' || p[i] == '\r' || p[i] == '\n' || (!is_char(p[i]) && !options_.utf8)))
            return fail(ErrorKind::Syntax, "invalid character in section");
        }
        if (i >= p.size()) return fail(ErrorKind::Syntax, "unterminated quoted string in section");
      } else if (a == '{') {
        return fail(ErrorKind::Syntax, "literal inside a section");
      } else if (!is_char(a) || is_ctl(a)) {
        return fail(ErrorKind::Syntax, "invalid character in section");
      }
    }
    if (depth != 0) return fail(ErrorKind::Syntax, "unterminated \"[\"");
    if (i == start) return fail(ErrorKind::Syntax, "invalid character");
    if (i - start > lim.max_string) return fail(ErrorKind::StringTooLong, "atom too long");
    current().push_back(Value::atom(p.substr(start, i - start)));
  }
  if (!open_.empty()) return fail(ErrorKind::Incomplete, "unbalanced parenthesis");
  return state_ = State::Done;
}

Parser::State Parser::feed_literal(std::string_view octets) {
  if (state_ != State::Literal || octets.size() > remaining_)
    return fail(ErrorKind::Syntax, "literal octets not expected");
  if (!announced_.binary && octets.find('\0') != std::string_view::npos)  // RFC 9051 9: CHAR8
    return fail(ErrorKind::NulInLiteral, "NUL in a literal (literal8 may carry it)");
  current().back().text += octets;
  remaining_ -= octets.size();
  if (remaining_ == 0) {
    state_ = State::Line;
    need_separator_ = true;
  }
  return state_;
}

std::variant<std::vector<Value>, Error> parse_values(std::string_view wire, const Options& options) {
  Parser p(options);
  std::size_t pos = 0;
  for (;;) {
    std::size_t crlf = wire.find("\r\n", pos);
    std::string_view piece = wire.substr(pos, crlf == std::string_view::npos ? crlf : crlf - pos);
    switch (p.feed_line(piece)) {
      case Parser::State::Failed: return p.error();
      case Parser::State::Done:
        if (crlf != std::string_view::npos) return Error{ErrorKind::Syntax, "line end inside the line"};
        return p.take_values();
      default: break;
    }
    if (crlf == std::string_view::npos) return Error{ErrorKind::Incomplete, "the announced literal is missing"};
    pos = crlf + 2;
    if (wire.size() - pos < p.literal_remaining())
      return Error{ErrorKind::Incomplete, "literal shorter than announced"};
    auto n = static_cast<std::size_t>(p.literal_remaining());
    if (p.feed_literal(wire.substr(pos, n)) == Parser::State::Failed) return p.error();
    pos += n;
  }
}

// Typed helpers.

namespace {
bool is_atom_kind(const Value& v) {
  return v.kind == Value::Kind::Atom || v.kind == Value::Kind::Number || v.kind == Value::Kind::Nil;
}
}  // namespace

std::optional<std::string> atom(const Value& v) {  // RFC 9051 9: atom = 1*ATOM-CHAR
  if (!is_atom_kind(v) || !is_atom(v.text)) return std::nullopt;
  return v.text;
}

std::optional<std::string> string(const Value& v) {  // RFC 9051 9: string = quoted / literal
  if (v.kind == Value::Kind::Quoted || (v.kind == Value::Kind::Literal && !v.binary)) return v.text;
  return std::nullopt;
}

std::optional<std::string> astring(const Value& v) {  // RFC 9051 9: astring = 1*ASTRING-CHAR / string
  if (is_atom_kind(v)) {
    if (!is_astring_atom(v.text)) return std::nullopt;
    return v.text;
  }
  return string(v);
}

std::optional<std::optional<std::string>> nstring(const Value& v) {  // RFC 9051 9: nstring = string / nil
  if (v.kind == Value::Kind::Nil) return std::optional<std::string>();
  auto s = string(v);
  if (!s) return std::nullopt;
  return std::optional<std::string>(std::move(*s));
}

std::optional<std::string> mailbox(const Value& v) {  // RFC 9051 9: mailbox = "INBOX" / astring
  auto s = astring(v);
  if (s && proto::equals_upper(*s, "INBOX")) return std::string("INBOX");  // case-insensitive
  return s;
}

std::optional<std::string> tag(const Value& v) {  // RFC 9051 9: tag
  if (!is_atom_kind(v) || !is_tag(v.text)) return std::nullopt;
  return v.text;
}

std::optional<std::uint32_t> number(const Value& v) {  // RFC 9051 9: number
  if (v.kind != Value::Kind::Number || v.number > kNumberMax) return std::nullopt;
  return static_cast<std::uint32_t>(v.number);
}

std::optional<std::uint32_t> nz_number(const Value& v) {  // RFC 9051 9: nz-number
  auto n = number(v);
  if (!n || *n == 0) return std::nullopt;
  return n;
}

std::optional<std::uint64_t> number64(const Value& v) {  // RFC 9051 9: number64
  if (v.kind != Value::Kind::Number) return std::nullopt;
  return v.number;
}

// Sequence sets.

std::optional<SequenceSet> parse_sequence_set(std::string_view s) {
  SequenceSet set;
  if (s == "$") {  // RFC 5182 3: sequence-set =/ seq-last-command
    set.saved = true;
    return set;
  }
  if (s.empty()) return std::nullopt;
  auto add_star = [&set](std::uint32_t n) {  // an element "n:*" (n == 0: "*" alone)
    set.star = true;
    if (n == 0) return;
    set.star_low = set.star_low == 0 ? n : std::min(set.star_low, n);
    set.star_high = std::max(set.star_high, n);
  };
  // RFC 9051 9: sequence-set = (seq-number / seq-range) ["," sequence-set]
  for (std::size_t pos = 0; pos <= s.size();) {
    std::size_t comma = std::min(s.find(',', pos), s.size());
    std::string_view elem = s.substr(pos, comma - pos);  // empty: ",," or a leading/trailing ","
    std::size_t colon = elem.find(':');  // RFC 9051 9: seq-range = seq-number ":" seq-number
    std::string_view a = elem.substr(0, colon);
    std::string_view b = colon == std::string_view::npos ? a : elem.substr(colon + 1);
    // RFC 9051 9: seq-number = nz-number / "*" (0 and over 2^32-1 refused)
    auto na = a == "*" ? std::optional<std::uint32_t>(0) : parse_nz_number(a);
    auto nb = b == "*" ? std::optional<std::uint32_t>(0) : parse_nz_number(b);
    if (!na || !nb) return std::nullopt;
    if (*na == 0 || *nb == 0) add_star(std::max(*na, *nb));  // "*", "*:*", "n:*", "*:n"
    else set.ranges.push_back({std::min(*na, *nb), std::max(*na, *nb)});  // "b:a" is "a:b"
    pos = comma + 1;
    if (comma == s.size()) break;
  }
  std::sort(set.ranges.begin(), set.ranges.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<SequenceSet::Range> merged;
  for (const auto& r : set.ranges) {  // merge overlapping and adjacent ranges
    if (!merged.empty() && std::uint64_t{r.first} <= std::uint64_t{merged.back().last} + 1)
      merged.back().last = std::max(merged.back().last, r.last);
    else
      merged.push_back(r);
  }
  set.ranges = std::move(merged);
  return set;
}

std::optional<SequenceSet> sequence_set(const Value& v) {
  if (!is_atom_kind(v)) return std::nullopt;
  return parse_sequence_set(v.text);
}

bool SequenceSet::contains(std::uint32_t n, std::uint32_t largest) const {
  if (saved) return false;
  for (const auto& r : ranges)
    if (n >= r.first && n <= r.last) return true;
  if (!star || largest == 0) return false;
  std::uint32_t lo = star_low == 0 ? largest : std::min(star_low, largest);
  std::uint32_t hi = std::max(star_high, largest);
  return n >= lo && n <= hi;
}

std::vector<SequenceSet::Range> SequenceSet::resolve(std::uint32_t largest) const {
  std::vector<Range> out;
  if (saved || largest == 0) return out;
  std::vector<Range> all = ranges;
  if (star) all.push_back({star_low == 0 ? largest : std::min(star_low, largest), largest});
  std::sort(all.begin(), all.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  for (Range r : all) {
    if (r.first > largest) break;
    r.last = std::min(r.last, largest);
    if (!out.empty() && std::uint64_t{r.first} <= std::uint64_t{out.back().last} + 1)
      out.back().last = std::max(out.back().last, r.last);
    else
      out.push_back(r);
  }
  return out;
}

void SequenceSet::for_each(std::uint32_t largest, const std::function<void(std::uint32_t)>& f) const {
  for (const auto& r : resolve(largest)) {
    for (std::uint32_t n = r.first;; ++n) {
      f(n);
      if (n == r.last) break;  // no overflow at 2^32-1
    }
  }
}

std::uint32_t SequenceSet::max_named() const {
  std::uint32_t m = ranges.empty() ? 0 : ranges.back().last;
  return std::max(m, star_high);
}

std::string SequenceSet::to_string() const {
  if (saved) return "$";
  std::string out;
  auto add = [&out](std::string_view part) {
    if (!out.empty()) out += ',';
    out += part;
  };
  for (const auto& r : ranges)
    add(r.first == r.last ? std::to_string(r.first) : std::to_string(r.first) + ":" + std::to_string(r.last));
  if (star && star_low == 0) add("*");
  if (star && star_low != 0) add(std::to_string(star_low) + ":*");
  if (star && star_high != star_low) add(std::to_string(star_high) + ":*");
  return out;
}

// Encoding.

bool can_quote(std::string_view s, bool utf8) {
  bool eight_bit = false;
  for (char c : s) {
    if (c == '\0' || c == '\r' || c == '\n') return false;  // RFC 9051 9: TEXT-CHAR
    if (!is_char(c)) eight_bit = true;
  }
  return !eight_bit || (utf8 && is_utf8(s));  // RFC 9051 9: QUOTED-CHAR's UTF8-2 / 3 / 4
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (is_quoted_special(c)) out += '\\';  // RFC 9051 9: "\" quoted-specials
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_or_literal(std::string_view s, bool utf8) {
  if (s.size() <= kMaxQuoted && can_quote(s, utf8)) return quoted(s);
  return literal_form(s, s.find('\0') != std::string_view::npos);
}

std::string encode_astring(std::string_view s, bool utf8) {
  // An atom but for "NIL" (it would read as nil) and "[" (the Parser pairs brackets).
  if (is_astring_atom(s) && !proto::equals_upper(s, "NIL") && s.find('[') == std::string_view::npos)
    return std::string(s);
  return quote_or_literal(s, utf8);
}

std::string encode_nstring(const std::optional<std::string>& s, bool utf8) {
  return s ? quote_or_literal(*s, utf8) : std::string("NIL");
}

std::string encode(const Value& v, bool utf8) {
  switch (v.kind) {
    case Value::Kind::Atom:
    case Value::Kind::Number:
      return v.text;
    case Value::Kind::Nil:
      return v.text.empty() ? std::string("NIL") : v.text;
    case Value::Kind::Quoted:
      return can_quote(v.text, utf8) ? quoted(v.text) : quote_or_literal(v.text, utf8);
    case Value::Kind::Literal:
      return literal_form(v.text, v.binary);
    case Value::Kind::List:
      return "(" + encode(v.items, utf8) + ")";
  }
  return {};
}

std::string encode(const std::vector<Value>& values, bool utf8) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ' ';
    out += encode(values[i], utf8);
  }
  return out;
}

namespace {

constexpr char kMutf7Digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int mutf7_value(char c) {  // RFC 3501 5.1.3: base64 with "," for "/"
  if (c == ',') return 63;
  if (c == '/') return -1;
  return sasl::base64_value(c);
}


// The next code point of well-formed UTF-8 at s[i], advancing i.
std::uint32_t next_utf8(std::string_view s, std::size_t& i) {
  auto c = static_cast<unsigned char>(s[i++]);
  if (c < 0x80) return c;
  int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
  std::uint32_t cp = c & (0x3F >> n);
  while (n-- > 0 && i < s.size()) cp = (cp << 6) | (static_cast<unsigned char>(s[i++]) & 0x3F);
  return cp;
}

}  // namespace

std::string mutf7_encode(std::string_view utf8) {
  std::string out;
  for (std::size_t i = 0; i < utf8.size();) {
    const char c = utf8[i];
    if (c >= 0x20 && c <= 0x7E) {  // RFC 3501 5.1.3: printable US-ASCII represents itself
      out += c == '&' ? "&-" : std::string(1, c);
      ++i;
      continue;
    }
    // A run of other characters, as UTF-16BE in modified base64.
    std::string units;
    while (i < utf8.size() && !(utf8[i] >= 0x20 && utf8[i] <= 0x7E)) {
      std::uint32_t cp = next_utf8(utf8, i);
      auto unit = [&](std::uint32_t u) {
        units += static_cast<char>(u >> 8);
        units += static_cast<char>(u & 0xFF);
      };
      if (cp >= 0x10000) {
        cp -= 0x10000;
        unit(0xD800 | (cp >> 10));
        unit(0xDC00 | (cp & 0x3FF));
      } else {
        unit(cp);
      }
    }
    out += '&';
    std::uint32_t bits = 0;
    int nbits = 0;
    for (unsigned char b : units) {
      bits = (bits << 8) | b;
      nbits += 8;
      while (nbits >= 6) {
        nbits -= 6;
        out += kMutf7Digits[(bits >> nbits) & 0x3F];
      }
    }
    if (nbits > 0) out += kMutf7Digits[(bits << (6 - nbits)) & 0x3F];
    out += '-';
  }
  return out;
}

std::optional<std::string> mutf7_decode(std::string_view s) {
  std::string out;
  bool after_run = false;  // RFC 3501 5.1.3: two encoded runs may not be adjacent
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c < 0x20 || c > 0x7E) return std::nullopt;
    if (c != '&') {
      out += c;
      ++i;
      after_run = false;
      continue;
    }
    std::size_t end = s.find('-', i + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == i + 1) {  // "&-" is "&"
      out += '&';
      i = end + 1;
      after_run = false;
      continue;
    }
    if (after_run) return std::nullopt;
    std::uint32_t bits = 0;
    int nbits = 0;
    std::uint32_t high = 0;  // a high surrogate waiting for its pair
    for (std::size_t k = i + 1; k < end; ++k) {
      int v = mutf7_value(s[k]);
      if (v < 0) return std::nullopt;
      bits = (bits << 6) | static_cast<std::uint32_t>(v);
      nbits += 6;
      if (nbits < 16) continue;
      nbits -= 16;
      const std::uint32_t u = (bits >> nbits) & 0xFFFF;
      bits &= (1u << nbits) - 1;
      if (high) {
        if (u < 0xDC00 || u > 0xDFFF) return std::nullopt;
        proto::append_utf8(out, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
        high = 0;
      } else if (u >= 0xD800 && u <= 0xDBFF) {
        high = u;
      } else if (u >= 0xDC00 && u <= 0xDFFF) {
        return std::nullopt;
      } else {
        if (u >= 0x20 && u <= 0x7E) return std::nullopt;  // printable ASCII must be itself
        proto::append_utf8(out, u);
      }
    }
    if (high || nbits >= 6 || bits != 0) return std::nullopt;  // a partial character or set bits
    i = end + 1;
    after_run = true;
  }
  return out;
}

}  // namespace cmail::imap
