// The message-structure parser: a line machine over the message octets that keeps a stack of
// open parts, then the field parsers it applies to each header block (Content-*, envelope,
// addresses, parameters), the RFC 2047 and transfer decoders, and the stored form.
#include <cmail/mail/structure.h>

#include <cmail/proto/ascii.h>
#include <cmail/proto/sasl.h>

#include <algorithm>
#include <iterator>
#include <map>

namespace cmail::mail {

namespace {

using proto::ascii_lower;

// Boundaries longer than this are not looked for (RFC 2046 5.1.1 allows 70): the multipart is
// kept as a leaf, and the line prefix kept for boundary detection stays small.
constexpr std::size_t kMaxBoundary = 256;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ISO-8859-1 octets to UTF-8: each octet is the code point of the same value.
std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> to_utf8(std::string_view charset, std::string_view octets) {
  std::string cs = ascii_lower(charset);
  if (cs == "utf-8" || cs == "us-ascii" || cs.empty()) return std::string(octets);
  if (cs == "iso-8859-1") return latin1_to_utf8(octets);
  return std::nullopt;
}

namespace {

// ---- Header blocks ----------------------------------------------------------------------------

// Calls fn(lower-cased name, value) for each field of a header block, values unfolded
// (RFC 5322 2.2.3: a line end followed by WSP is removed) and trimmed. A line that neither
// continues a field nor holds a colon is skipped.
template <typename Fn>
void for_each_field(std::string_view block, Fn fn) {
  std::string name, value;
  bool open = false;
  auto flush = [&] {
    if (open) fn(name, trim(value));
    open = false;
  };
  while (!block.empty()) {
    std::size_t lf = block.find('\n');
    std::string_view line = block.substr(0, lf);
    block.remove_prefix(lf == std::string_view::npos ? block.size() : lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // RFC 5322 2.1: the empty line ends the header
    if (is_wsp(line.front())) {  // RFC 5322 2.2.3: folded continuation
      if (open) value += line;
      continue;
    }
    flush();
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view n = line.substr(0, colon);
    while (!n.empty() && is_wsp(n.back())) n.remove_suffix(1);  // RFC 5322 4.5: WSP before ":"
    name = ascii_lower(n);
    value.assign(line.substr(colon + 1));
    open = true;
  }
  flush();
}

}  // namespace

void for_each_header_field(std::string_view block,
                           const std::function<void(std::string_view, std::string_view)>& fn) {
  for_each_field(block, [&](const std::string& name, std::string_view value) { fn(name, value); });
}

namespace {

// ---- MIME structured values (RFC 2045 5.1) -------------------------------------------------------

// RFC 2045 5.1: tspecials
bool is_tspecial(char c) {
  switch (c) {
    case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':': case '\\':
    case '"': case '/': case '[': case ']': case '?': case '=':
      return true;
    default:
      return false;
  }
}

// RFC 2045 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
bool is_token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7F && !is_tspecial(c);
}

struct Lexer {
  std::string_view s;
  std::size_t i = 0;

  bool done() const { return i >= s.size(); }
  char peek() const { return done() ? '\0' : s[i]; }

  // RFC 5322 3.2.2: CFWS, comments nested and with quoted-pairs.
  void skip_cfws() {
    while (!done()) {
      char c = s[i];
      if (is_wsp(c) || c == '\r' || c == '\n') {
        ++i;
      } else if (c == '(') {
        int depth = 0;
        for (; i < s.size(); ++i) {
          if (s[i] == '\\') ++i;
          else if (s[i] == '(') ++depth;
          else if (s[i] == ')' && --depth == 0) break;
        }
        i = std::min(i + 1, s.size());  // past the ")", or at the end (unterminated)
      } else {
        break;
      }
    }
  }

  std::string token() {
    std::size_t start = i;
    while (!done() && is_token_char(s[i])) ++i;
    return std::string(s.substr(start, i - start));
  }

  // RFC 5322 3.2.4 quoted-string from the '"' at s[i], unquoted; an unterminated one runs to
  // the end.
  std::string quoted() {
    std::string out;
    for (++i; i < s.size(); ++i) {
      if (s[i] == '"') {
        ++i;
        break;
      }
      if (s[i] == '\\' && i + 1 < s.size()) ++i;  // quoted-pair
      if (s[i] == '\r' || s[i] == '\n') continue;  // a folded quoted string
      out += s[i];
    }
    return out;
  }

  // A parameter value: a quoted-string, or (leniently) a token that may hold tspecials other
  // than ";", as mailers write "boundary=----=_Part_1".
  std::string value() {
    if (peek() == '"') return quoted();
    std::size_t start = i;
    while (!done() && s[i] != ';' && s[i] != '"' && s[i] != '(' && !is_wsp(s[i]) && s[i] != '\r' && s[i] != '\n') ++i;
    return std::string(s.substr(start, i - start));
  }

  // Past the next ';' outside quotes (recovery from a malformed parameter).
  void skip_parameter() {
    while (!done() && s[i] != ';') {
      if (s[i] == '"') quoted();
      else ++i;
    }
  }
};

bool is_attribute_char(unsigned char c) {  // RFC 2231 7: attribute-char
  return c > 0x20 && c < 0x7F && !is_tspecial(static_cast<char>(c)) && c != '*' && c != '\'' && c != '%';
}

std::string percent_decode(std::string_view s) {  // RFC 2231 4: extended-value
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int h = 0, l = 0;
    if (s[i] == '%' && i + 2 < s.size() && (h = hex_value(s[i + 1])) >= 0 && (l = hex_value(s[i + 2])) >= 0) {
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (is_attribute_char(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// RFC 2045 5.1 parameters after the value, with RFC 2231 continuations and charsets applied.
std::vector<Param> parse_params(Lexer& lx) {
  struct Pieces {
    std::optional<std::string> plain, extended;  // name=, name*=
    std::map<unsigned, std::pair<bool, std::string>> sections;  // name*N= (false), name*N*= (true)
  };
  std::vector<std::string> order;
  std::map<std::string, Pieces> by_name;
  while (true) {
    lx.skip_cfws();
    if (lx.done()) break;
    if (lx.peek() == ';') {
      ++lx.i;
      continue;
    }
    std::string attr = ascii_lower(lx.token());
    lx.skip_cfws();
    if (attr.empty() || lx.peek() != '=') {
      if (attr.empty() && !lx.done() && lx.peek() != ';') ++lx.i;
      lx.skip_parameter();
      continue;
    }
    ++lx.i;
    lx.skip_cfws();
    std::string value = lx.value();
    // RFC 2231 3 and 4: name*N (continuation), name* and name*N* (extended).
    bool extended = !attr.empty() && attr.back() == '*';
    std::string base = extended ? attr.substr(0, attr.size() - 1) : attr;
    std::optional<unsigned> section;
    if (std::size_t star = base.rfind('*'); star != std::string::npos && star + 1 < base.size() &&
        base.size() - star <= 4 &&
        std::all_of(base.begin() + static_cast<std::ptrdiff_t>(star) + 1, base.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
      unsigned n = 0;
      for (char c : base.substr(star + 1)) n = n * 10 + static_cast<unsigned>(c - '0');
      section = n;
      base.resize(star);
    }
    if (base.empty()) continue;
    auto [it, fresh] = by_name.try_emplace(base);
    if (fresh) order.push_back(base);
    Pieces& p = it->second;
    if (section) p.sections.try_emplace(*section, extended, std::move(value));
    else if (extended) { if (!p.extended) p.extended = std::move(value); }
    else if (!p.plain) p.plain = std::move(value);
  }
  std::vector<Param> out;
  for (const std::string& name : order) {
    Pieces& p = by_name[name];
    std::optional<std::string> joined;  // RFC 2231 3: the sections in order, from 0
    bool charset_form = false;
    if (!p.sections.empty() && p.sections.begin()->first == 0) {
      charset_form = p.sections.begin()->second.first;
      joined.emplace();
      unsigned next = 0;
      for (auto& [n, sec] : p.sections) {
        if (n != next++) break;  // a gap ends the value
        // A section after the first is percent-encoded when extended; the first keeps its
        // charset'language' prefix for below, the others are encoded here so that one
        // extended value results.
        if (!charset_form) *joined += sec.second;
        else if (n == 0 || sec.first) *joined += sec.second;
        else *joined += percent_encode(sec.second);
      }
    } else if (p.extended) {
      joined = *p.extended;
      charset_form = true;
    }
    if (!joined) {
      out.push_back({name, p.plain.value_or("")});
      continue;
    }
    if (!charset_form) {
      out.push_back({name, std::move(*joined)});
      continue;
    }
    // RFC 2231 4: extended-initial-value := [charset] "'" [language] "'" extended-other-values
    std::size_t q1 = joined->find('\''), q2 = q1 == std::string::npos ? q1 : joined->find('\'', q1 + 1);
    if (q2 == std::string::npos) {  // no charset part: take the octets as they are
      out.push_back({name, percent_decode(*joined)});
      continue;
    }
    std::string charset = joined->substr(0, q1);
    if (auto utf8 = to_utf8(charset, percent_decode(std::string_view(*joined).substr(q2 + 1))))
      out.push_back({name, std::move(*utf8)});
    else
      out.push_back({name + "*", std::move(*joined)});  // another charset: kept as written
  }
  return out;
}

struct ContentType {
  std::string type, subtype;
  std::vector<Param> params;
};

// RFC 2045 5.1: type "/" subtype *(";" parameter); nullopt when type or subtype is missing.
std::optional<ContentType> parse_content_type(std::string_view v) {
  Lexer lx{v};
  lx.skip_cfws();
  ContentType ct;
  ct.type = ascii_lower(lx.token());
  lx.skip_cfws();
  if (ct.type.empty() || lx.peek() != '/') return std::nullopt;
  ++lx.i;
  lx.skip_cfws();
  ct.subtype = ascii_lower(lx.token());
  if (ct.subtype.empty()) return std::nullopt;
  ct.params = parse_params(lx);
  return ct;
}

// ---- Addresses (RFC 5322 3.4) -----------------------------------------------------------------

struct AddrToken {
  enum class Kind : std::uint8_t { Word, Quoted, Special } kind;
  std::string text;  // Special: the one character
};

// RFC 5322 3.2: atoms (with "." and octets >= 0x80, RFC 6532 3.2), quoted strings, domain
// literals, and the specials that structure an address list; comments dropped.
std::vector<AddrToken> address_tokens(std::string_view v) {
  std::vector<AddrToken> out;
  Lexer lx{v};
  while (true) {
    lx.skip_cfws();
    if (lx.done()) break;
    char c = lx.peek();
    if (c == '"') {
      out.push_back({AddrToken::Kind::Quoted, lx.quoted()});
    } else if (c == '[') {  // RFC 5322 3.4.1: domain-literal, kept with its brackets
      std::size_t end = v.find(']', lx.i);
      end = end == std::string_view::npos ? v.size() : end + 1;
      out.push_back({AddrToken::Kind::Word, std::string(v.substr(lx.i, end - lx.i))});
      lx.i = end;
    } else if (c == '<' || c == '>' || c == '@' || c == ',' || c == ';' || c == ':' || c == ')') {
      out.push_back({AddrToken::Kind::Special, std::string(1, c)});
      ++lx.i;
    } else {
      std::size_t start = lx.i;
      while (!lx.done()) {
        char d = lx.peek();
        if (is_wsp(d) || d == '\r' || d == '\n' || d == '"' || d == '(' || d == ')' || d == '[' || d == '<' ||
            d == '>' || d == '@' || d == ',' || d == ';' || d == ':')
          break;
        ++lx.i;
      }
      out.push_back({AddrToken::Kind::Word, std::string(v.substr(start, lx.i - start))});
    }
  }
  return out;
}

bool is_special(const AddrToken& t, char c) { return t.kind == AddrToken::Kind::Special && t.text[0] == c; }

// A display name or group name: the words joined by one space.
std::string phrase(const std::vector<AddrToken>& words) {
  std::string out;
  for (const AddrToken& w : words) {
    if (!out.empty()) out += ' ';
    out += w.text;
  }
  return out;
}

// RFC 5322 3.4.1 addr-spec from its tokens: local part before the last "@", domain after,
// their pieces joined without space (RFC 5322 4.4: CFWS between them is obsolete).
void addr_spec(const std::vector<AddrToken>& toks, Address& a) {
  std::size_t at = toks.size();
  for (std::size_t k = 0; k < toks.size(); ++k)
    if (is_special(toks[k], '@')) at = k;
  for (std::size_t k = 0; k < toks.size(); ++k) {
    if (k == at) continue;
    (k < at ? a.mailbox : a.host) += toks[k].text;
  }
}

Address group_end() {
  Address a;
  a.kind = Address::Kind::GroupEnd;
  return a;
}

}  // namespace

std::vector<Address> parse_address_list(std::string_view value) {
  std::vector<AddrToken> toks = address_tokens(value);
  std::vector<Address> out;
  std::vector<AddrToken> words;  // since the last address or group marker
  bool in_group = false, done = false;  // done: an angle-addr was taken; the rest is ignored
  auto flush = [&] {
    if (!done && !words.empty()) {  // RFC 5322 3.4: mailbox = addr-spec
      Address a;
      addr_spec(words, a);
      out.push_back(std::move(a));
    }
    words.clear();
    done = false;
  };
  for (std::size_t i = 0; i < toks.size(); ++i) {
    const AddrToken& t = toks[i];
    if (t.kind != AddrToken::Kind::Special || is_special(t, '@')) {
      if (!done) words.push_back(t);
    } else if (is_special(t, '<')) {  // RFC 5322 3.4: name-addr = [display-name] angle-addr
      Address a;
      a.name = phrase(words);
      words.clear();
      ++i;
      // RFC 5322 4.4: obs-route = obs-domain-list ":"
      if (i < toks.size() && is_special(toks[i], '@')) {
        std::size_t k = i;
        while (k < toks.size() && !is_special(toks[k], ':') && !is_special(toks[k], '>') &&
               !is_special(toks[k], '<') && !is_special(toks[k], ';'))
          ++k;
        if (k < toks.size() && is_special(toks[k], ':')) {
          for (; i < k; ++i) a.adl += toks[i].text;
          ++i;
        }
      }
      std::vector<AddrToken> spec;
      for (; i < toks.size() && !is_special(toks[i], '>'); ++i) {
        if (is_special(toks[i], ',') || is_special(toks[i], ';')) break;  // unterminated "<"
        spec.push_back(toks[i]);
      }
      if (i < toks.size() && !is_special(toks[i], '>')) --i;  // let the loop see the "," or ";"
      addr_spec(spec, a);
      out.push_back(std::move(a));
      done = true;
    } else if (is_special(t, ':') && !in_group && !done) {  // RFC 5322 3.4: group
      Address g;
      g.kind = Address::Kind::GroupStart;
      g.mailbox = phrase(words);
      out.push_back(std::move(g));
      words.clear();
      in_group = true;
    } else if (is_special(t, ',')) {
      flush();
    } else if (is_special(t, ';')) {
      flush();
      if (in_group) out.push_back(group_end());
      in_group = false;
    }  // a stray ">", ")" or ":" is ignored
  }
  flush();
  if (in_group) out.push_back(group_end());  // missing ";"
  return out;
}

// ---- RFC 2047 -----------------------------------------------------------------------------------

namespace {

std::string base64_decode(std::string_view s) {
  Base64Decoder d;
  std::string out;
  d.feed(s, out);
  d.finish(out);
  return out;
}

// RFC 2047 2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?=" at s[i]; its
// decoded UTF-8 and its length, or nullopt.
std::optional<std::pair<std::string, std::size_t>> encoded_word(std::string_view s, std::size_t i) {
  if (s.substr(i, 2) != "=?") return std::nullopt;
  // RFC 2047 2: a word is at most 75 characters; mailers write longer ones, never past a line.
  s = s.substr(0, i + std::min<std::size_t>(s.size() - i, 998));
  std::size_t q1 = s.find('?', i + 2);
  if (q1 == std::string_view::npos || q1 + 3 >= s.size() || s[q1 + 2] != '?') return std::nullopt;
  std::string_view charset = s.substr(i + 2, q1 - i - 2);
  if (charset.empty() || charset.find_first_of(" \t\r\n") != std::string_view::npos) return std::nullopt;
  charset = charset.substr(0, charset.find('*'));  // RFC 2231 5: charset "*" language
  char enc = proto::ascii_upper(s[q1 + 1]);
  std::size_t end = s.find("?=", q1 + 3);
  if (end == std::string_view::npos) return std::nullopt;
  std::string_view text = s.substr(q1 + 3, end - q1 - 3);
  if (text.find_first_of(" \t\r\n") != std::string_view::npos) return std::nullopt;
  std::string octets;
  if (enc == 'B') {  // RFC 2047 4.1
    octets = base64_decode(text);
  } else if (enc == 'Q') {  // RFC 2047 4.2: "_" is SP, "=XX" an octet
    for (std::size_t k = 0; k < text.size(); ++k) {
      int h = 0, l = 0;
      if (text[k] == '_') octets += ' ';
      else if (text[k] == '=' && k + 2 < text.size() && (h = hex_value(text[k + 1])) >= 0 &&
               (l = hex_value(text[k + 2])) >= 0) {
        octets += static_cast<char>(h * 16 + l);
        k += 2;
      } else {
        octets += text[k];
      }
    }
  } else {
    return std::nullopt;
  }
  auto utf8 = to_utf8(charset, octets);
  if (!utf8) return std::nullopt;  // an unknown charset: the word stays as it is
  return std::make_pair(std::move(*utf8), end + 2 - i);
}

}  // namespace

std::string decode_encoded_words(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '=') {
      if (auto w = encoded_word(text, i)) {
        out += w->first;
        i += w->second;
        std::size_t k = i;
        while (k < text.size() && (is_wsp(text[k]) || text[k] == '\r' || text[k] == '\n')) ++k;
        if (k > i && k < text.size() && encoded_word(text, k)) i = k;  // RFC 2047 6.2: space between words is dropped
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

// ---- The part tree ------------------------------------------------------------------------------

std::optional<std::string_view> Part::param(std::string_view name) const {
  for (const Param& p : params)
    if (p.name == name) return std::string_view(p.value);
  return std::nullopt;
}

namespace {

// The Content-* fields of a header block into `p`; the envelope too for a message.
void apply_header(std::string_view block, bool digest_child, bool message, Part& p) {
  static constexpr std::string_view kNames[] = {
      "content-type", "content-transfer-encoding", "content-id", "content-description", "content-md5",
      "content-location", "content-disposition", "content-language", "date", "subject", "in-reply-to",
      "message-id", "from", "sender", "reply-to", "to", "cc", "bcc"};
  bool seen[std::size(kNames)] = {};  // a field's first occurrence wins
  bool have_type = false;
  Envelope env;
  for_each_field(block, [&](const std::string& name, std::string_view value) {
    auto known = std::find(std::begin(kNames), std::end(kNames), name);
    if (known == std::end(kNames) || seen[known - std::begin(kNames)]) return;
    seen[known - std::begin(kNames)] = true;
    if (name == "content-type") {
      if (auto ct = parse_content_type(value)) {
        p.type = std::move(ct->type);
        p.subtype = std::move(ct->subtype);
        p.params = std::move(ct->params);
        have_type = true;
      }
    } else if (name == "content-transfer-encoding") {  // RFC 2045 6.1: mechanism
      Lexer lx{value};
      lx.skip_cfws();
      std::string t = ascii_lower(lx.token());
      if (!t.empty()) p.encoding = std::move(t);
    } else if (name == "content-id") {  // RFC 2045 7
      p.id = std::string(value);
    } else if (name == "content-description") {  // RFC 2045 8
      p.description = std::string(value);
    } else if (name == "content-md5") {  // RFC 1864
      p.md5 = std::string(value);
    } else if (name == "content-location") {  // RFC 2557 4.4
      p.location = std::string(value);
    } else if (name == "content-disposition") {  // RFC 2183 2
      Lexer lx{value};
      lx.skip_cfws();
      std::string t = ascii_lower(lx.token());
      if (!t.empty()) {
        p.disposition = std::move(t);
        p.disposition_params = parse_params(lx);
      }
    } else if (name == "content-language") {  // RFC 3282 2: 1#Language-tag
      Lexer lx{value};
      while (true) {
        lx.skip_cfws();
        if (lx.done()) break;
        std::string t = lx.token();
        if (!t.empty()) p.languages.push_back(std::move(t));
        else ++lx.i;  // a "," or junk
      }
    } else if (message) {  // RFC 9051 7.5.2: the envelope fields
      auto addresses = [&](AddressField& f) {
        f.raw = std::string(value);
        f.addresses = parse_address_list(value);
      };
      if (name == "date") env.date = std::string(value);
      else if (name == "subject") env.subject = std::string(value);
      else if (name == "in-reply-to") env.in_reply_to = std::string(value);
      else if (name == "message-id") env.message_id = std::string(value);
      else if (name == "from") addresses(env.from);
      else if (name == "sender") addresses(env.sender);
      else if (name == "reply-to") addresses(env.reply_to);
      else if (name == "to") addresses(env.to);
      else if (name == "cc") addresses(env.cc);
      else if (name == "bcc") addresses(env.bcc);
    }
  });
  if (!have_type) {
    if (digest_child) {  // RFC 2046 5.1.5: the default in a digest
      p.type = "message";
      p.subtype = "rfc822";
    } else {  // RFC 2045 5.2: the default Content-Type
      p.type = "text";
      p.subtype = "plain";
      p.params = {{"charset", "us-ascii"}};
    }
  }
  if (message) p.envelope = std::move(env);
}

}  // namespace

StructureParser::StructureParser(StructureLimits limits) : limits_(limits) {
  open_part(0, false, 0);
  stack_.back().part.envelope = Envelope{};
}

void StructureParser::open_part(std::uint64_t at, bool digest_child, std::size_t depth) {
  Frame f;
  f.part.header_offset = at;
  f.digest_child = digest_child;
  f.depth = depth;
  stack_.push_back(std::move(f));
  header_.clear();
  header_mark_ = 0;
  ++parts_;
}

void StructureParser::update_max_boundary() {
  max_boundary_ = 0;
  for (const Frame& f : stack_) max_boundary_ = std::max(max_boundary_, f.boundary.size());
}

void StructureParser::take(std::string_view s) {
  if (s.empty()) return;
  if (!frozen_ && max_boundary_ > 0) {
    std::size_t cap = max_boundary_ + 4;  // "--" boundary "--"
    std::size_t n = std::min(s.size(), cap - std::min(cap, head_.size()));
    head_.append(s.substr(0, n));
    for (char c : s.substr(n))
      if (!is_wsp(c) && c != '\r' && c != '\n') tail_padding_ = false;
  }
  if (stack_.back().mode == Frame::Mode::Header) {
    std::size_t room = limits_.max_header - std::min(limits_.max_header, header_.size());
    if (s.size() > room) limited_ = true;
    header_.append(s.substr(0, room));
  }
  before_last_ = s.size() >= 2 ? s[s.size() - 2] : last_;
  last_ = s.back();
  pos_ += s.size();
  if (last_ == '\n') ++lfs_;
}

std::optional<StructureParser::Delimiter> StructureParser::delimiter() const {
  std::string_view c = head_;
  if (c.size() < 2 || c[0] != '-' || c[1] != '-') return std::nullopt;
  // RFC 2046 5.1.1: delimiter := "--" boundary, close-delimiter := delimiter "--", each
  // followed by transport-padding (LWSP) and the line end. The innermost multipart first; an
  // outer boundary also ends the parts inside it (RFC 2046 5.1.2).
  for (std::size_t k = stack_.size(); k-- > 0;) {
    const Frame& f = stack_[k];
    if (f.mode != Frame::Mode::Multipart) continue;
    std::string_view rest = c.substr(2);
    if (rest.substr(0, f.boundary.size()) != f.boundary) continue;
    rest.remove_prefix(f.boundary.size());
    bool close = rest.substr(0, 2) == "--";
    if (close) rest.remove_prefix(2);
    // RFC 2046 5.1.1: transport-padding, then the line end
    if (tail_padding_ && std::all_of(rest.begin(), rest.end(),
                                     [](char ch) { return is_wsp(ch) || ch == '\r' || ch == '\n'; }))
      return Delimiter{k, close};
  }
  return std::nullopt;
}

void StructureParser::end_header(std::uint64_t body_offset) {
  Frame& f = stack_.back();
  apply_header(header_, f.digest_child, f.part.envelope.has_value(), f.part);
  header_.clear();
  header_mark_ = 0;
  f.part.header_length = body_offset - f.part.header_offset;
  f.part.body_offset = body_offset;
  f.body_lfs = lfs_;
  f.mode = Frame::Mode::Leaf;
  bool container = f.part.is_multipart() || f.part.is_message();
  if (container && f.depth >= limits_.max_depth) {  // past the nesting limit: a leaf
    limited_ = true;
    return;
  }
  if (f.part.is_multipart()) {
    auto b = f.part.param("boundary");  // RFC 2046 5.1.1: the boundary parameter is required
    if (!b || b->empty() || b->size() > kMaxBoundary) return;
    f.boundary = std::string(*b);
    f.mode = Frame::Mode::Multipart;
    update_max_boundary();
  } else if (f.part.is_message()) {
    if (parts_ >= limits_.max_parts) {
      frozen_ = limited_ = true;
      return;
    }
    // RFC 2046 5.2.1 (and RFC 6532 3.7 for message/global): the body is a message.
    f.mode = Frame::Mode::Message;
    std::size_t depth = f.depth + 1;
    open_part(body_offset, false, depth);
    stack_.back().part.envelope = Envelope{};
  }
}

void StructureParser::close_top(std::uint64_t end, std::uint64_t end_lfs, bool partial) {
  Frame f = std::move(stack_.back());
  stack_.pop_back();
  Part& p = f.part;
  bool header_done = f.mode != Frame::Mode::Header;
  // The part ends at `end`, but never before its complete header nor before its last child:
  // the line end before a delimiter belongs to the delimiter (RFC 2046 5.1.1) unless it is
  // the empty line that ends a header. Raised, the end is the start of the delimiter line.
  std::uint64_t floor = header_done ? p.body_offset : p.header_offset;
  if (!p.children.empty()) floor = std::max(floor, p.children.back().body_offset + p.children.back().body_length);
  if (floor > end) {
    end = floor;
    end_lfs = line_lfs_;
    partial = false;
  }
  if (!header_done) {  // a header without an empty line: no body
    apply_header(header_, f.digest_child, p.envelope.has_value(), p);
    header_.clear();
    p.header_length = end - p.header_offset;
    p.body_offset = end;
    f.body_lfs = end_lfs;
  }
  p.body_length = end - p.body_offset;
  // body-fld-lines: the line ends in the body, and a last line without one.
  p.body_lines = p.body_length > 0 ? end_lfs - f.body_lfs + (partial ? 1 : 0) : 0;
  if (stack_.empty()) root_ = std::move(p);
  else stack_.back().part.children.push_back(std::move(p));
  update_max_boundary();
}

void StructureParser::end_line(std::uint64_t eol) {
  std::uint64_t content = pos_ - line_start_ - eol;
  if (!frozen_) {
    if (auto d = delimiter()) {
      if (!d->close && parts_ >= limits_.max_parts) {  // past the part limit: the rest is text
        frozen_ = limited_ = true;
      } else {
        if (stack_.back().mode == Frame::Mode::Header) header_.resize(std::min(header_.size(), header_mark_));
        // RFC 2046 5.1.1: the line end before the delimiter is part of the delimiter.
        std::uint64_t end = has_prev_ ? prev_eol_ : line_start_;
        std::uint64_t end_lfs = has_prev_ ? line_lfs_ - 1 : line_lfs_;
        std::size_t at = d->frame;
        while (stack_.size() > at + 1) close_top(end, end_lfs, prev_content_);
        Frame& m = stack_[at];
        if (d->close) m.mode = Frame::Mode::Epilogue;  // RFC 2046 5.1.1: the epilogue follows
        else open_part(pos_, m.part.subtype == "digest", m.depth + 1);  // RFC 2046 5.1.5
        goto next_line;
      }
    }
  }
  if (stack_.back().mode == Frame::Mode::Header) {
    if (content == 0) end_header(pos_);  // RFC 5322 2.1: the empty line ends the header
    else header_mark_ = header_.size();
  }
next_line:
  prev_eol_ = line_start_ + content;
  prev_content_ = content > 0;
  has_prev_ = true;
  line_start_ = pos_;
  line_lfs_ = lfs_;
  head_.clear();
  tail_padding_ = true;
}

void StructureParser::feed(std::string_view piece) {
  while (!piece.empty()) {
    std::size_t lf = piece.find('\n');
    std::size_t n = lf == std::string_view::npos ? piece.size() : lf + 1;
    take(piece.substr(0, n));
    piece.remove_prefix(n);
    // A bare LF ends a line as CRLF does; the CR of a CRLF may have come in the last piece.
    if (lf != std::string_view::npos) end_line(pos_ - line_start_ >= 2 && before_last_ == '\r' ? 2 : 1);
  }
}

Part StructureParser::finish() {
  if (pos_ > line_start_) end_line(0);  // the last line, without a line end
  bool partial = pos_ > 0 && last_ != '\n';
  while (!stack_.empty()) close_top(pos_, lfs_, partial);
  Part root = std::move(*root_);
  *this = StructureParser(limits_);
  return root;
}

Part parse_structure(std::string_view message, StructureLimits limits) {
  StructureParser p(limits);
  p.feed(message);
  return p.finish();
}

// ---- Transfer decoders --------------------------------------------------------------------------

void Base64Decoder::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    int v = sasl::base64_value(c);  // RFC 2045 6.8: Table 1
    if (v < 0) {
      if (c == '=') finish(out);  // RFC 2045 6.8: "=" pads the last quantum
      else if (!is_wsp(c) && c != '\r' && c != '\n') damaged_ = true;  // ignored, RFC 2045 6.8
      continue;
    }
    bits_ = (bits_ << 6) | static_cast<std::uint32_t>(v);
    if (++count_ == 4) {
      out += static_cast<char>((bits_ >> 16) & 0xFF);
      out += static_cast<char>((bits_ >> 8) & 0xFF);
      out += static_cast<char>(bits_ & 0xFF);
      size_ += 3;
      bits_ = 0;
      count_ = 0;
    }
  }
}

void Base64Decoder::finish(std::string& out) {
  if (count_ == 1) damaged_ = true;  // six bits make no octet
  if (count_ >= 2) {
    out += static_cast<char>((bits_ >> (count_ == 2 ? 4 : 10)) & 0xFF);
    ++size_;
  }
  if (count_ == 3) {
    out += static_cast<char>((bits_ >> 2) & 0xFF);
    ++size_;
  }
  bits_ = 0;
  count_ = 0;
}

void QuotedPrintableDecoder::emit(std::string_view s, std::string& out) {
  out += s;
  size_ += s.size();
}

void QuotedPrintableDecoder::put(char c, std::string& out) {
  switch (state_) {
    case State::Text:
      if (c == '=') {
        emit(space_, out);  // white space before "=" is not trailing
        space_.clear();
        state_ = State::Eq;
      } else if (is_wsp(c)) {
        space_ += c;
        if (space_.size() > 998) {  // longer than a line may be: not transport padding
          emit(space_, out);
          space_.clear();
        }
      } else if (c == '\r') {
        state_ = State::Cr;
      } else if (c == '\n') {  // RFC 2045 6.7 (3): trailing white space is deleted
        space_.clear();
        emit("\n", out);
      } else {
        emit(space_, out);
        space_.clear();
        emit(std::string_view(&c, 1), out);
      }
      break;
    case State::Cr:
      state_ = State::Text;
      if (c == '\n') {
        space_.clear();
        emit("\r\n", out);
      } else {  // a bare CR is text
        emit(space_, out);
        space_.clear();
        emit("\r", out);
        put(c, out);
      }
      break;
    case State::Eq:
      if (hex_value(c) >= 0) {
        hex_ = c;
        state_ = State::EqHex;
      } else if (is_wsp(c)) {
        eq_space_ = c;
        state_ = State::EqSpace;
      } else if (c == '\r') {
        state_ = State::EqCr;
      } else if (c == '\n') {  // RFC 2045 6.7 (5): soft line break
        state_ = State::Text;
      } else {  // a malformed "=": kept literally
        damaged_ = true;
        emit("=", out);
        state_ = State::Text;
        put(c, out);
      }
      break;
    case State::EqHex:
      state_ = State::Text;
      if (int l = hex_value(c); l >= 0) {  // RFC 2045 6.7 (1): general 8bit representation
        char octet = static_cast<char>(hex_value(hex_) * 16 + l);
        emit(std::string_view(&octet, 1), out);
      } else {
        damaged_ = true;
        emit("=", out);
        emit(std::string_view(&hex_, 1), out);
        put(c, out);
      }
      break;
    case State::EqSpace:
      if (is_wsp(c) && eq_space_.size() < 998) {
        eq_space_ += c;
      } else if (c == '\r') {
        state_ = State::EqCr;
      } else if (c == '\n') {  // RFC 2045 6.7 (5): soft line break after transport padding
        state_ = State::Text;
      } else {
        damaged_ = true;
        emit("=", out);
        state_ = State::Text;
        space_ = std::move(eq_space_);
        eq_space_.clear();
        put(c, out);
      }
      break;
    case State::EqCr:
      if (c == '\n') {  // RFC 2045 6.7 (5): soft line break
        state_ = State::Text;
      } else {
        damaged_ = true;
        emit("=", out);
        space_ = std::move(eq_space_);
        eq_space_.clear();
        state_ = State::Cr;
        put(c, out);
      }
      break;
  }
  if (state_ == State::Text || state_ == State::Cr) eq_space_.clear();
}

void QuotedPrintableDecoder::feed(std::string_view in, std::string& out) {
  for (char c : in) put(c, out);
}

void QuotedPrintableDecoder::finish(std::string& out) {
  switch (state_) {
    case State::Text:
      break;  // trailing white space of the last line is deleted as on any line
    case State::Cr:
      emit(space_, out);
      emit("\r", out);
      break;
    case State::Eq: case State::EqSpace: case State::EqCr:
      break;  // a soft line break at the very end
    case State::EqHex:
      damaged_ = true;
      emit("=", out);
      emit(std::string_view(&hex_, 1), out);
      break;
  }
  space_.clear();
  eq_space_.clear();
  state_ = State::Text;
}

TransferDecoder::TransferDecoder(std::string_view encoding) {
  std::string e = ascii_lower(trim(encoding));
  if (e.empty() || e == "7bit" || e == "8bit" || e == "binary") kind_ = Kind::Identity;  // RFC 2045 6.2
  else if (e == "base64") kind_ = Kind::Base64;
  else if (e == "quoted-printable") kind_ = Kind::QuotedPrintable;
  else kind_ = Kind::Unknown;
}

void TransferDecoder::feed(std::string_view in, std::string& out) {
  switch (kind_) {
    case Kind::Base64: b64_.feed(in, out); break;
    case Kind::QuotedPrintable: qp_.feed(in, out); break;
    default: out += in; size_ += in.size(); break;
  }
}

void TransferDecoder::finish(std::string& out) {
  if (kind_ == Kind::Base64) b64_.finish(out);
  if (kind_ == Kind::QuotedPrintable) qp_.finish(out);
}

std::uint64_t TransferDecoder::size() const {
  return kind_ == Kind::Base64 ? b64_.size() : kind_ == Kind::QuotedPrintable ? qp_.size() : size_;
}

// ---- The stored form ----------------------------------------------------------------------------

namespace {

constexpr std::string_view kMagic = "CMS";
constexpr char kVersion = 1;
constexpr int kMaxStoredDepth = 200;

// Tags of a part's fields; 0 ends a part or an envelope.
enum PartTag : std::uint8_t {
  kHeaderOffset = 1, kHeaderLength, kBodyOffset, kBodyLength, kBodyLines, kType, kSubtype, kParam,
  kEncoding, kId, kDescription, kMd5, kLocation, kDisposition, kDispositionParam, kLanguage, kChild,
  kEnvelope,
};
// Tags of an envelope's fields.
enum EnvelopeTag : std::uint8_t {
  kDate = 1, kSubject, kInReplyTo, kMessageId, kRawFrom, kRawSender, kRawReplyTo, kRawTo, kRawCc,
  kRawBcc, kAddress,
};

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>(0x80 | (v & 0x7F));
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out += s;
}

void put_tagged(std::string& out, std::uint8_t tag, std::uint64_t v) {
  out += static_cast<char>(tag);
  put_varint(out, v);
}

void put_tagged(std::string& out, std::uint8_t tag, std::string_view s) {
  out += static_cast<char>(tag);
  put_string(out, s);
}

void put_tagged(std::string& out, std::uint8_t tag, const std::optional<std::string>& s) {
  if (s) put_tagged(out, tag, std::string_view(*s));
}

void put_envelope(std::string& out, const Envelope& e) {
  put_tagged(out, kDate, e.date);
  put_tagged(out, kSubject, e.subject);
  put_tagged(out, kInReplyTo, e.in_reply_to);
  put_tagged(out, kMessageId, e.message_id);
  const AddressField* fields[] = {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc};
  for (std::uint8_t k = 0; k < 6; ++k) put_tagged(out, static_cast<std::uint8_t>(kRawFrom + k), fields[k]->raw);
  for (std::uint8_t k = 0; k < 6; ++k) {
    for (const Address& a : fields[k]->addresses) {
      put_tagged(out, kAddress, k);
      put_varint(out, static_cast<std::uint8_t>(a.kind));
      put_string(out, a.name);
      put_string(out, a.adl);
      put_string(out, a.mailbox);
      put_string(out, a.host);
    }
  }
  out += '\0';
}

void put_part(std::string& out, const Part& p) {
  put_tagged(out, kHeaderOffset, p.header_offset);
  put_tagged(out, kHeaderLength, p.header_length);
  put_tagged(out, kBodyOffset, p.body_offset);
  put_tagged(out, kBodyLength, p.body_length);
  put_tagged(out, kBodyLines, p.body_lines);
  put_tagged(out, kType, std::string_view(p.type));
  put_tagged(out, kSubtype, std::string_view(p.subtype));
  for (const Param& q : p.params) {
    put_tagged(out, kParam, std::string_view(q.name));
    put_string(out, q.value);
  }
  put_tagged(out, kEncoding, std::string_view(p.encoding));
  put_tagged(out, kId, p.id);
  put_tagged(out, kDescription, p.description);
  put_tagged(out, kMd5, p.md5);
  put_tagged(out, kLocation, p.location);
  put_tagged(out, kDisposition, p.disposition);
  for (const Param& q : p.disposition_params) {
    put_tagged(out, kDispositionParam, std::string_view(q.name));
    put_string(out, q.value);
  }
  for (const std::string& l : p.languages) put_tagged(out, kLanguage, std::string_view(l));
  if (p.envelope) {
    out += static_cast<char>(kEnvelope);
    put_envelope(out, *p.envelope);
  }
  for (const Part& c : p.children) {
    out += static_cast<char>(kChild);
    put_part(out, c);
  }
  out += '\0';
}

struct Reader {
  std::string_view in;
  bool ok = true;

  std::uint8_t byte() {
    if (in.empty()) {
      ok = false;
      return 0;
    }
    auto b = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    return b;
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; ok; shift += 7) {
      std::uint8_t b = byte();
      if (shift == 63 && b > 1) ok = false;  // more than 64 bits
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
      if (shift == 63) ok = false;
    }
    return ok ? v : 0;
  }
  std::string string() {
    std::uint64_t n = varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

bool read_envelope(Reader& r, Envelope& e) {
  AddressField* fields[] = {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc};
  while (r.ok) {
    std::uint8_t tag = r.byte();
    if (!r.ok) return false;
    if (tag == 0) return true;
    if (tag == kDate) e.date = r.string();
    else if (tag == kSubject) e.subject = r.string();
    else if (tag == kInReplyTo) e.in_reply_to = r.string();
    else if (tag == kMessageId) e.message_id = r.string();
    else if (tag >= kRawFrom && tag <= kRawBcc) fields[tag - kRawFrom]->raw = r.string();
    else if (tag == kAddress) {
      std::uint64_t field = r.varint(), kind = r.varint();
      if (field > 5 || kind > 2) return false;
      Address a;
      a.kind = static_cast<Address::Kind>(kind);
      a.name = r.string();
      a.adl = r.string();
      a.mailbox = r.string();
      a.host = r.string();
      fields[field]->addresses.push_back(std::move(a));
    } else {
      return false;  // a field this version does not know
    }
  }
  return false;
}

bool read_part(Reader& r, Part& p, int depth) {
  if (depth > kMaxStoredDepth) return false;
  while (r.ok) {
    std::uint8_t tag = r.byte();
    if (!r.ok) return false;
    switch (tag) {
      case 0: return true;
      case kHeaderOffset: p.header_offset = r.varint(); break;
      case kHeaderLength: p.header_length = r.varint(); break;
      case kBodyOffset: p.body_offset = r.varint(); break;
      case kBodyLength: p.body_length = r.varint(); break;
      case kBodyLines: p.body_lines = r.varint(); break;
      case kType: p.type = r.string(); break;
      case kSubtype: p.subtype = r.string(); break;
      case kParam: {
        std::string n = r.string();
        p.params.push_back({std::move(n), r.string()});
        break;
      }
      case kEncoding: p.encoding = r.string(); break;
      case kId: p.id = r.string(); break;
      case kDescription: p.description = r.string(); break;
      case kMd5: p.md5 = r.string(); break;
      case kLocation: p.location = r.string(); break;
      case kDisposition: p.disposition = r.string(); break;
      case kDispositionParam: {
        std::string n = r.string();
        p.disposition_params.push_back({std::move(n), r.string()});
        break;
      }
      case kLanguage: p.languages.push_back(r.string()); break;
      case kEnvelope:
        if (!read_envelope(r, p.envelope.emplace())) return false;
        break;
      case kChild:
        if (!read_part(r, p.children.emplace_back(), depth + 1)) return false;
        break;
      default: return false;  // a field this version does not know
    }
  }
  return false;
}

}  // namespace

std::string encode_structure(const Part& root) {
  std::string out(kMagic);
  out += kVersion;
  put_part(out, root);
  return out;
}

std::optional<Part> decode_structure(std::string_view stored) {
  if (stored.substr(0, kMagic.size()) != kMagic || stored.size() < kMagic.size() + 1 ||
      stored[kMagic.size()] != kVersion)
    return std::nullopt;
  Reader r{stored.substr(kMagic.size() + 1)};
  Part p;
  if (!read_part(r, p, 0) || !r.ok || !r.in.empty()) return std::nullopt;
  return p;
}

}  // namespace cmail::mail
