// IMAP SEARCH: the argument parser (a recursive descent over the values of the codec), the
// evaluation of the key tree on one message, the text of a stored message, and the encoder of
// SEARCH and ESEARCH responses.
#include <cmail/imap/search.h>

#include <cmail/proto/ascii.h>

#include <algorithm>
#include <array>

namespace cmail::imap {

namespace {

using proto::ascii_upper;
using proto::equals_upper;

// ---- Dates ----------------------------------------------------------------------------------

constexpr std::array<std::string_view, 12> kMonths = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};

std::optional<unsigned> month_of(std::string_view s) {
  for (std::size_t i = 0; i < kMonths.size(); ++i)
    if (equals_upper(s, kMonths[i])) return static_cast<unsigned>(i + 1);
  return std::nullopt;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) {
  int n = 0;
  for (char c : s) n = n * 10 + (c - '0');
  return n;
}

std::optional<std::int64_t> civil_day(int y, unsigned m, int d) {
  if (d < 1 || static_cast<unsigned>(d) > days_in_month(y, m)) return std::nullopt;
  return days_from_civil(y, m, static_cast<unsigned>(d));
}

// The day of Unix time `t` read in a zone `zone_minutes` east of UTC (floor division).
std::int64_t day_of(std::int64_t t, int zone_minutes) {
  std::int64_t s = t + static_cast<std::int64_t>(zone_minutes) * 60;
  return s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
}

// ---- Case folding ---------------------------------------------------------------------------

char32_t lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;         // Latin-1 capitals
  if (c == 0x130) return 'i';                                       // I with dot above
  if (c >= 0x100 && c <= 0x137) return c | 1;                       // Latin Extended-A pairs
  if (c >= 0x139 && c <= 0x148) return (c & 1) ? c + 1 : c;
  if (c >= 0x14A && c <= 0x177) return c | 1;
  if (c == 0x178) return 0xFF;
  if (c >= 0x179 && c <= 0x17E) return (c & 1) ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;        // Greek capitals
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c == 0x3C2) return 0x3C3;                                     // final sigma
  if (c >= 0x410 && c <= 0x42F) return c + 32;                      // Cyrillic capitals
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

void put_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {  // lower() maps below U+0800 only, and longer sequences are copied as they are
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

bool contains_folded(std::string_view haystack, const std::string& folded_needle) {
  if (folded_needle.empty()) return true;
  return search_fold(haystack).find(folded_needle) != std::string::npos;
}

// ---- Parsing --------------------------------------------------------------------------------

struct KeyParser {
  const SearchLimits& limits;
  SearchRequest& request;
  std::size_t keys = 0;
  std::string error;

  bool fail(std::string text) {
    if (error.empty()) error = std::move(text);
    return false;
  }

  // The value after keyword `name`, or an error.
  const Value* arg(std::span<const Value> vals, std::size_t& i, std::string_view name) {
    if (i >= vals.size()) {
      fail("missing argument to " + std::string(name));
      return nullptr;
    }
    return &vals[i++];
  }

  bool parse_string(std::span<const Value> vals, std::size_t& i, std::string_view name, std::string& out) {
    const Value* v = arg(vals, i, name);
    if (!v) return false;
    auto s = astring(*v);  // RFC 9051 9: search-key arguments are astring
    if (!s) return fail(std::string(name) + " needs a string");
    out = std::move(*s);
    return true;
  }

  bool parse_date(std::span<const Value> vals, std::size_t& i, std::string_view name, std::int64_t& out) {
    const Value* v = arg(vals, i, name);
    if (!v) return false;
    std::optional<std::int64_t> d;
    // RFC 9051 9: date = date-text / DQUOTE date-text DQUOTE
    if (v->kind == Value::Kind::Atom || v->kind == Value::Kind::Quoted) d = parse_search_date(v->text);
    if (!d) return fail(std::string(name) + " needs a date d-Mon-yyyy");
    out = *d;
    return true;
  }

  bool parse_list(std::span<const Value> vals, std::size_t depth, SearchKey& out) {
    std::size_t i = 0;
    while (i < vals.size()) {
      SearchKey k;
      if (!parse_key(vals, i, depth, k)) return false;
      out.children.push_back(std::move(k));
    }
    return true;
  }

  bool parse_key(std::span<const Value> vals, std::size_t& i, std::size_t depth, SearchKey& out) {
    if (depth > limits.max_depth) return fail("search keys nested too deep");
    if (++keys > limits.max_keys) return fail("too many search keys");
    const Value& v = vals[i++];
    using K = SearchKey::Kind;
    if (v.is_list()) {  // RFC 9051 9: "(" search-key *(SP search-key) ")"
      if (v.items.empty()) return fail("empty parenthesized search key");
      out.kind = K::And;
      return parse_list(v.items, depth + 1, out);
    }
    if (v.kind != Value::Kind::Atom && v.kind != Value::Kind::Number)
      return fail("search key expected");
    const std::string name = ascii_upper(v.text);
    struct FlagKey {
      std::string_view name;
      K kind;
      std::uint32_t flags;
    };
    static constexpr FlagKey kFlagKeys[] = {
        {"ANSWERED", K::Flag, kAnswered},   {"DELETED", K::Flag, kDeleted},
        {"DRAFT", K::Flag, kDraft},         {"FLAGGED", K::Flag, kFlagged},
        {"SEEN", K::Flag, kSeen},           {"UNANSWERED", K::NoFlag, kAnswered},
        {"UNDELETED", K::NoFlag, kDeleted}, {"UNDRAFT", K::NoFlag, kDraft},
        {"UNFLAGGED", K::NoFlag, kFlagged}, {"UNSEEN", K::NoFlag, kSeen},
        {"RECENT", K::Recent, 0},               {"NEW", K::New, 0},
        {"OLD", K::Old, 0},                     {"ALL", K::And, 0},
    };
    for (const FlagKey& f : kFlagKeys) {
      if (name == f.name) {
        out.kind = f.kind;
        out.flags = f.flags;
        return true;
      }
    }
    struct TextKey {
      std::string_view name;
      K kind;
      std::string_view field;
    };
    static constexpr TextKey kTextKeys[] = {
        {"BCC", K::Header, "bcc"}, {"CC", K::Header, "cc"},         {"FROM", K::Header, "from"},
        {"TO", K::Header, "to"},   {"SUBJECT", K::Header, "subject"}, {"BODY", K::Body, ""},
        {"TEXT", K::Text, ""},
    };
    for (const TextKey& t : kTextKeys) {
      if (name == t.name) {
        out.kind = t.kind;
        out.name = t.field;
        return parse_string(vals, i, name, out.text);
      }
    }
    struct DateKey {
      std::string_view name;
      K kind;
    };
    static constexpr DateKey kDateKeys[] = {
        {"BEFORE", K::Before},         {"ON", K::On},         {"SINCE", K::Since},
        {"SENTBEFORE", K::SentBefore}, {"SENTON", K::SentOn}, {"SENTSINCE", K::SentSince},
    };
    for (const DateKey& d : kDateKeys) {
      if (name == d.name) {
        out.kind = d.kind;
        return parse_date(vals, i, name, out.day);
      }
    }
    if (name == "HEADER") {  // RFC 9051 9: "HEADER" SP header-fld-name SP astring
      out.kind = K::Header;
      std::string field;
      if (!parse_string(vals, i, name, field)) return false;
      if (field.empty() || std::any_of(field.begin(), field.end(), [](char c) {
            return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F || c == ':';
          }))  // RFC 5322 3.6.8: ftext is printable ASCII except ":"
        return fail("HEADER needs a field name");
      out.name = proto::ascii_lower(field);
      return parse_string(vals, i, name, out.text);
    }
    if (name == "KEYWORD" || name == "UNKEYWORD") {  // RFC 9051 9: flag-keyword = atom
      out.kind = name == "KEYWORD" ? K::Keyword : K::Unkeyword;
      const Value* a = arg(vals, i, name);
      if (!a) return false;
      auto kw = atom(*a);
      if (!kw) return fail(name + " needs a keyword");
      out.text = std::move(*kw);
      return true;
    }
    if (name == "LARGER" || name == "SMALLER") {  // RFC 9051 9: number64
      out.kind = name == "LARGER" ? K::Larger : K::Smaller;
      const Value* a = arg(vals, i, name);
      if (!a) return false;
      auto n = number64(*a);
      if (!n) return fail(name + " needs a number");
      out.number = *n;
      return true;
    }
    if (name == "NOT") {
      if (i >= vals.size()) return fail("missing argument to NOT");
      out.kind = K::Not;
      out.children.emplace_back();
      return parse_key(vals, i, depth + 1, out.children.back());
    }
    if (name == "OR") {
      out.kind = K::Or;
      out.children.resize(2);
      for (SearchKey& c : out.children) {
        if (i >= vals.size()) return fail("missing argument to OR");
        if (!parse_key(vals, i, depth + 1, c)) return false;
      }
      return true;
    }
    if (name == "UID") {
      out.kind = K::Uid;
      const Value* a = arg(vals, i, name);
      if (!a) return false;
      auto set = sequence_set(*a);
      if (!set) return fail("UID needs a sequence set");
      out.set = std::move(*set);
      request.uses_saved = request.uses_saved || out.set.saved;
      return true;
    }
    if (name == "MODSEQ") {
      // RFC 7162 3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer
      out.kind = K::ModSeq;
      const Value* a = arg(vals, i, name);
      if (!a) return false;
      if (a->kind == Value::Kind::Quoted || a->kind == Value::Kind::Literal) {
        // RFC 7162 7: entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE
        if (!proto::starts_with_upper(a->text, "/FLAGS/") || a->text.size() == 7)
          return fail("MODSEQ needs an entry name /flags/FLAG");
        out.entry = a->text;
        const Value* t = arg(vals, i, name);
        if (!t) return false;
        std::string type = t->kind == Value::Kind::Atom ? proto::ascii_lower(t->text) : std::string();
        if (type != "priv" && type != "shared" && type != "all")  // RFC 7162 7: entry-type-req
          return fail("MODSEQ needs an entry type priv, shared or all");
        out.entry_type = std::move(type);
        a = arg(vals, i, name);
        if (!a) return false;
      }
      auto n = number64(*a);  // RFC 7162 7: mod-sequence-valzer = "0" / mod-sequence-value
      if (!n) return fail("MODSEQ needs a mod-sequence");
      out.number = *n;
      request.modseq = true;
      return true;
    }
    if (auto set = sequence_set(v)) {  // RFC 9051 9: search-key =/ sequence-set
      out.kind = K::Sequence;
      out.set = std::move(*set);
      request.uses_saved = request.uses_saved || out.set.saved;
      return true;
    }
    return fail("unknown search key " + v.text.substr(0, 64));
  }
};

// The cost class of a key: 0 message data, 1 the header, 2 the body.
int cost(const SearchKey& k) {
  using K = SearchKey::Kind;
  switch (k.kind) {
    case K::And: case K::Or: case K::Not: {
      int c = 0;
      for (const SearchKey& ch : k.children) c = std::max(c, cost(ch));
      return c;
    }
    case K::SentBefore: case K::SentOn: case K::SentSince: case K::Header:
      return 1;
    case K::Body: case K::Text:
      return 2;
    default:
      return 0;
  }
}

// And and Or are commutative and evaluation has no side effect: cheap keys first give the same
// result with fewer calls into MessageText.
void order_by_cost(SearchKey& k) {
  for (SearchKey& c : k.children) order_by_cost(c);
  if (k.kind == SearchKey::Kind::And || k.kind == SearchKey::Kind::Or)
    std::stable_sort(k.children.begin(), k.children.end(),
                     [](const SearchKey& a, const SearchKey& b) { return cost(a) < cost(b); });
}

// ---- Evaluation -----------------------------------------------------------------------------

bool header_matches(std::string_view header, std::string_view field, const std::string& needle) {
  bool found = false;
  mail::for_each_header_field(header, [&](std::string_view name, std::string_view value) {
    if (found || name != field) return;
    // RFC 9051 6.4.4: the field contains the string (any occurrence of the field)
    found = contains_folded(mail::decode_encoded_words(value), needle);
  });
  return found;
}

std::string decoded_header(std::string_view header) {
  std::string out;
  mail::for_each_header_field(header, [&](std::string_view name, std::string_view value) {
    out.append(name).append(": ").append(mail::decode_encoded_words(value)).append("\n");
  });
  return out;
}

std::optional<std::int64_t> sent_day(MessageText& text) {
  std::optional<std::int64_t> day;
  bool seen = false;
  mail::for_each_header_field(text.header(), [&](std::string_view name, std::string_view value) {
    if (seen || name != "date") return;
    seen = true;  // the first Date: field
    day = parse_rfc5322_day(value);
  });
  return day;
}

bool in_saved(const SearchContext& c, std::uint32_t uid) {
  return std::binary_search(c.saved.begin(), c.saved.end(), uid);
}

std::string_view slice(std::string_view s, std::uint64_t off, std::uint64_t len) {
  if (off >= s.size()) return {};
  return s.substr(static_cast<std::size_t>(off),
                  static_cast<std::size_t>(std::min<std::uint64_t>(len, s.size() - off)));
}

}  // namespace

// ---- Public: dates and folding --------------------------------------------------------------

std::int64_t days_from_civil(int year, unsigned month, unsigned day) {
  // Days before the year (proleptic Gregorian, from 0000-03-01 so that February ends a year).
  std::int64_t y = static_cast<std::int64_t>(year) - (month <= 2 ? 1 : 0);
  std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  std::int64_t yoe = y - era * 400;
  std::int64_t mp = (static_cast<std::int64_t>(month) + 9) % 12;  // March = 0
  std::int64_t doy = (153 * mp + 2) / 5 + static_cast<std::int64_t>(day) - 1;
  std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;  // 719468: days from 0000-03-01 to 1970-01-01
}

std::optional<std::int64_t> parse_search_date(std::string_view s) {
  // RFC 9051 9: date-text = date-day "-" date-month "-" date-year; date-day = 1*2DIGIT;
  // date-year = 4DIGIT
  std::size_t d1 = s.find('-');
  if (d1 == std::string_view::npos) return std::nullopt;
  std::size_t d2 = s.find('-', d1 + 1);
  if (d2 == std::string_view::npos) return std::nullopt;
  std::string_view day = s.substr(0, d1), mon = s.substr(d1 + 1, d2 - d1 - 1), year = s.substr(d2 + 1);
  if (!all_digits(day) || day.size() > 2 || !all_digits(year) || year.size() != 4) return std::nullopt;
  auto m = month_of(mon);
  if (!m) return std::nullopt;
  return civil_day(to_int(year), *m, to_int(day));
}

std::optional<std::int64_t> parse_rfc5322_day(std::string_view value) {
  // RFC 5322 3.3: date-time = [ day-of-week "," ] date time [CFWS]; date = day month year.
  // Comments are dropped, "," and FWS separate tokens.
  std::vector<std::string_view> tokens;
  std::size_t i = 0, depth = 0;
  while (i < value.size()) {
    char c = value[i];
    if (c == '(') { ++depth; ++i; continue; }
    if (c == ')') { if (depth) --depth; ++i; continue; }
    if (depth || c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\n') { ++i; continue; }
    std::size_t j = i;
    while (j < value.size() && value[j] != ' ' && value[j] != '\t' && value[j] != ',' && value[j] != '(' &&
           value[j] != '\r' && value[j] != '\n')
      ++j;
    tokens.push_back(value.substr(i, j - i));
    if (tokens.size() > 8) break;
    i = j;
  }
  for (std::size_t k = 0; k + 2 < tokens.size(); ++k) {
    if (!all_digits(tokens[k]) || tokens[k].size() > 2) continue;
    auto m = month_of(tokens[k + 1]);
    std::string_view y = tokens[k + 2];
    if (!m || !all_digits(y) || y.size() < 2 || y.size() > 4) continue;
    int year = to_int(y);
    if (y.size() == 2) year += year < 50 ? 2000 : 1900;  // RFC 5322 4.3: obs-year of 2 digits
    else if (y.size() == 3) year += 1900;                // RFC 5322 4.3: 3 digits add 1900
    return civil_day(year, *m, to_int(tokens[k]));
  }
  return std::nullopt;
}

std::string search_fold(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(lower(c));
      ++i;
      continue;
    }
    // Two-octet sequences (U+0080 to U+07FF) hold every letter lower() maps; the rest is copied.
    if ((c & 0xE0) == 0xC0 && c >= 0xC2 && i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) {
      char32_t cp = (static_cast<char32_t>(c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F);
      put_utf8(lower(cp), out);
      i += 2;
      continue;
    }
    out += s[i++];
  }
  return out;
}

// ---- Public: parsing ------------------------------------------------------------------------

std::variant<SearchRequest, SearchError> parse_search(const std::vector<Value>& args, bool uid_command,
                                                      const SearchLimits& limits) {
  SearchRequest req;
  req.uid = uid_command;
  std::size_t i = 0;
  auto is_word = [&](std::string_view upper) {
    return i < args.size() && args[i].kind == Value::Kind::Atom && equals_upper(args[i].text, upper);
  };
  if (is_word("RETURN")) {  // RFC 4731 3.1: search-return-opts = SP "RETURN" SP "(" [opts] ")"
    ++i;
    if (i >= args.size() || !args[i].is_list()) return SearchError{"RETURN needs a list of options"};
    req.esearch = true;
    for (const Value& o : args[i].items) {
      std::string name = o.kind == Value::Kind::Atom ? ascii_upper(o.text) : std::string();
      if (name == "MIN") req.returns |= kReturnMin;
      else if (name == "MAX") req.returns |= kReturnMax;
      else if (name == "ALL") req.returns |= kReturnAll;
      else if (name == "COUNT") req.returns |= kReturnCount;
      else if (name == "SAVE") req.returns |= kReturnSave;  // RFC 5182 2.4
      else  // RFC 4731 3.1: an unknown return option makes the command BAD
        return SearchError{"unknown RETURN option " + (o.is_list() ? std::string("(...)") : o.text.substr(0, 64))};
    }
    if (req.returns == 0) req.returns = kReturnAll;  // RFC 4731 3.1: RETURN () is RETURN (ALL)
    ++i;
  }
  if (is_word("CHARSET")) {
    ++i;
    std::optional<std::string> cs;
    if (i < args.size()) cs = astring(args[i]);
    if (!cs) return SearchError{"CHARSET needs a charset name"};
    req.charset = ascii_upper(*cs);
    // RFC 9051 6.4.4: UTF-8 is supported (and US-ASCII, its subset); another charset is
    // NO [BADCHARSET (charsets)]
    if (req.charset != "UTF-8" && req.charset != "US-ASCII")
      return SearchError{"[BADCHARSET " + std::string(kSearchCharsets) + "] charset not supported", true};
    ++i;
  }
  if (i >= args.size()) return SearchError{"missing search key"};
  KeyParser p{limits, req, 0, {}};
  req.key.kind = SearchKey::Kind::And;
  if (!p.parse_list(std::span<const Value>(args).subspan(i), 1, req.key)) return SearchError{p.error};
  order_by_cost(req.key);
  return req;
}

// ---- Public: evaluation ---------------------------------------------------------------------

SearchContext SearchContext::of(std::span<const std::uint32_t> uids, std::span<const std::uint32_t> saved,
                                int zone_minutes) {
  SearchContext c;
  c.max_seq = static_cast<std::uint32_t>(uids.size());
  c.max_uid = uids.empty() ? 0 : uids.back();
  c.saved = saved;
  c.zone_minutes = zone_minutes;
  return c;
}

bool matches(const SearchKey& key, const MessageView& m, const SearchContext& c) {
  using K = SearchKey::Kind;
  switch (key.kind) {
    case K::And:
      for (const SearchKey& k : key.children)
        if (!matches(k, m, c)) return false;
      return true;
    case K::Or:
      for (const SearchKey& k : key.children)
        if (matches(k, m, c)) return true;
      return false;
    case K::Not:
      return key.children.size() == 1 && !matches(key.children.front(), m, c);
    case K::Flag:
      return (m.flags & key.flags) == key.flags;
    case K::NoFlag:
      return (m.flags & key.flags) == 0;
    case K::Recent:
      return m.recent;
    case K::New:  // RFC 3501 6.4.4: NEW is (RECENT UNSEEN)
      return m.recent && (m.flags & kSeen) == 0;
    case K::Old:  // RFC 3501 6.4.4: OLD is NOT RECENT
      return !m.recent;
    case K::Keyword:
    case K::Unkeyword: {
      bool set = std::any_of(m.keywords.begin(), m.keywords.end(), [&](const std::string& kw) {
        return kw.size() == key.text.size() &&
               std::equal(kw.begin(), kw.end(), key.text.begin(),
                          [](char a, char b) { return proto::ascii_upper(a) == proto::ascii_upper(b); });
      });
      return key.kind == K::Keyword ? set : !set;
    }
    case K::Larger:
      return m.size > key.number;
    case K::Smaller:
      return m.size < key.number;
    case K::Before:  // RFC 9051 6.4.4: the internal date, disregarding time and timezone
      return day_of(m.internal_date, c.zone_minutes) < key.day;
    case K::On:
      return day_of(m.internal_date, c.zone_minutes) == key.day;
    case K::Since:
      return day_of(m.internal_date, c.zone_minutes) >= key.day;
    case K::SentBefore:
    case K::SentOn:
    case K::SentSince: {
      if (!m.text) return false;
      auto day = sent_day(*m.text);  // RFC 9051 6.4.4: the Date: field, disregarding time and zone
      if (!day) return false;
      if (key.kind == K::SentBefore) return *day < key.day;
      if (key.kind == K::SentOn) return *day == key.day;
      return *day >= key.day;
    }
    case K::Header:
      return m.text && header_matches(m.text->header(), key.name, search_fold(key.text));
    case K::Body:
      return m.text && contains_folded(m.text->body(), search_fold(key.text));
    case K::Text: {
      if (!m.text) return false;
      std::string needle = search_fold(key.text);
      return contains_folded(decoded_header(m.text->header()), needle) || contains_folded(m.text->body(), needle);
    }
    case K::Sequence:
      return key.set.saved ? in_saved(c, m.uid) : key.set.contains(m.seq, c.max_seq);
    case K::Uid:
      return key.set.saved ? in_saved(c, m.uid) : key.set.contains(m.uid, c.max_uid);
    case K::ModSeq:  // RFC 7162 3.1.5: mod-sequence equal to or greater than the value
      return m.modseq >= key.number;
  }
  return false;
}

// ---- Public: message text -------------------------------------------------------------------

std::string_view StoredMessageText::header() {
  return slice(octets_, root_.header_offset, root_.header_length);
}

std::string_view StoredMessageText::body() {
  if (!body_) {
    body_.emplace();
    add_body(root_, 0);
  }
  return *body_;
}

void StoredMessageText::add_body(const mail::Part& p, std::size_t depth) {
  if (depth > 200) return;
  if (!p.children.empty()) {
    if (p.is_message()) {  // the encapsulated message's header is text of the body
      const mail::Part& inner = p.children.front();
      if (!body_->empty()) body_->push_back('\n');
      body_->append(decoded_header(slice(octets_, inner.header_offset, inner.header_length)));
    }
    for (const mail::Part& c : p.children) add_body(c, depth + 1);
    return;
  }
  // Leaves: text/*, and a multipart or message whose structure was not found (kept as text).
  if (p.type != "text" && p.type != "multipart" && p.type != "message") return;
  std::string decoded;
  mail::TransferDecoder dec(p.encoding);  // RFC 2045 6: undo base64 and quoted-printable
  dec.feed(slice(octets_, p.body_offset, p.body_length), decoded);
  dec.finish(decoded);
  auto utf8 = mail::to_utf8(p.param("charset").value_or(""), decoded);
  if (!body_->empty()) body_->push_back('\n');
  body_->append(utf8 ? *utf8 : decoded);
}

// ---- Public: responses ----------------------------------------------------------------------

std::string compress_numbers(std::span<const std::uint32_t> numbers) {
  std::string out;
  for (std::size_t i = 0; i < numbers.size();) {
    std::size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] <= numbers[j] + 1 && numbers[j + 1] >= numbers[j]) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(numbers[i]);
    if (numbers[j] != numbers[i]) out += ':' + std::to_string(numbers[j]);
    i = j + 1;
  }
  return out;
}

SearchResponse encode_search_response(const SearchRequest& request, std::span<const SearchMatch> matches,
                                      std::string_view tag, bool esearch_always) {
  SearchResponse r;
  auto number = [&](const SearchMatch& m) { return request.uid ? m.uid : m.seq; };
  std::uint64_t highest = 0;
  for (const SearchMatch& m : matches) highest = std::max(highest, m.modseq);
  if (!request.esearch && !esearch_always) {  // RFC 9051 7.3.5 (RFC 3501 7.2.5): SEARCH
    r.line = "* SEARCH";
    for (const SearchMatch& m : matches) r.line += ' ' + std::to_string(number(m));
    // RFC 7162 3.1.5: with a MODSEQ key, the highest mod-sequence of the messages returned
    if (request.modseq && !matches.empty()) r.line += " (MODSEQ " + std::to_string(highest) + ")";
    r.line += "\r\n";
    return r;
  }
  unsigned ret = request.esearch ? request.returns : kReturnAll;
  if (ret & kReturnSave) {
    r.saved.emplace();
    // RFC 5182 2.4: with MIN and/or MAX and neither ALL nor COUNT, only those are saved
    bool only_min_max = (ret & (kReturnAll | kReturnCount)) == 0 && (ret & (kReturnMin | kReturnMax)) != 0;
    if (only_min_max) {
      if (!matches.empty() && (ret & kReturnMin)) r.saved->push_back(matches.front().uid);
      if (!matches.empty() && (ret & kReturnMax) && !(matches.size() == 1 && (ret & kReturnMin)))
        r.saved->push_back(matches.back().uid);
    } else {
      for (const SearchMatch& m : matches) r.saved->push_back(m.uid);
    }
    std::sort(r.saved->begin(), r.saved->end());
    // RFC 5182 2.4: SAVE alone gives no ESEARCH response
    if ((ret & ~kReturnSave) == 0) return r;
  }
  // RFC 4731 3.1: "* ESEARCH" search-correlator [SP "UID"] *(SP search-return-data)
  r.line = "* ESEARCH (TAG " + (can_quote(tag) ? quoted(tag) : quote_or_literal(tag)) + ")";
  if (request.uid) r.line += " UID";
  if (!matches.empty()) {  // RFC 4731 3.1: MIN, MAX and ALL are left out when nothing matched
    if (ret & kReturnMin) r.line += " MIN " + std::to_string(number(matches.front()));
    if (ret & kReturnMax) r.line += " MAX " + std::to_string(number(matches.back()));
  }
  if (ret & kReturnCount) r.line += " COUNT " + std::to_string(matches.size());
  if (!matches.empty() && (ret & kReturnAll)) {
    std::vector<std::uint32_t> numbers;
    numbers.reserve(matches.size());
    for (const SearchMatch& m : matches) numbers.push_back(number(m));
    std::sort(numbers.begin(), numbers.end());
    r.line += " ALL " + compress_numbers(numbers);
  }
  if (request.modseq && !matches.empty()) {
    // RFC 4731 3.2: with ALL or COUNT, the highest mod-sequence of all the messages found;
    // with MIN and/or MAX only, of the messages those return
    std::uint64_t m = highest;
    if ((ret & (kReturnAll | kReturnCount)) == 0) {
      m = 0;
      if (ret & kReturnMin) m = std::max(m, matches.front().modseq);
      if (ret & kReturnMax) m = std::max(m, matches.back().modseq);
    }
    r.line += " MODSEQ " + std::to_string(m);
  }
  r.line += "\r\n";
  return r;
}

}  // namespace cmail::imap
