// libFuzzer target: the IMAP wire codec (cmail/imap/codec.h). Byte 0 chooses the options (bit 0
// UTF-8 in quoted strings, bit 1 LITERAL-, bit 2 small limits) and bits 4-7 of it the size of
// the pieces literals are fed in; the rest is a line with its literals inline. Invariants:
// what parses encodes to a line that parses to the same values; a Parser fed piece by piece
// (literals in any split) gives what parse_values gives, and trailing_literal agrees with it
// on every announcement; the typed helpers' results encode back to themselves; a sequence set
// prints to a text that parses to the same set, and its contains() agrees with resolve();
// quote_or_literal of any text parses back to that text.
#include <cmail/imap/codec.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace cmail::imap;

void check(bool ok) {
  if (!ok) std::abort();
}

// The Parser fed as an engine would: pieces at each announcement's CRLF, literals in `chunk`s.
std::variant<std::vector<Value>, Error> parse_in_pieces(std::string_view wire, const Options& o,
                                                        std::size_t chunk) {
  Parser p(o);
  std::size_t pos = 0;
  for (;;) {
    std::size_t crlf = wire.find("\r\n", pos);
    std::string_view piece = wire.substr(pos, crlf == std::string_view::npos ? crlf : crlf - pos);
    Parser::State st = p.feed_line(piece);
    if (st == Parser::State::Failed) return p.error();
    if (st == Parser::State::Done) {
      if (crlf != std::string_view::npos) return Error{ErrorKind::Syntax, ""};
      return p.take_values();
    }
    check(trailing_literal(piece) == p.literal());
    if (crlf == std::string_view::npos) return Error{ErrorKind::Incomplete, ""};
    pos = crlf + 2;
    if (wire.size() - pos < p.literal_remaining()) return Error{ErrorKind::Incomplete, ""};
    do {
      std::size_t n = std::min<std::uint64_t>(chunk, p.literal_remaining());
      st = p.feed_literal(wire.substr(pos, n));
      pos += n;
      if (st == Parser::State::Failed) return p.error();
    } while (st == Parser::State::Literal && p.literal_remaining() > 0);
    if (st == Parser::State::Literal) st = p.feed_literal("");  // "{0}"
    check(st == Parser::State::Line);
  }
}

void check_sequence_set(const SequenceSet& s) {
  auto again = parse_sequence_set(s.to_string());
  check(again && *again == s);
  for (std::uint32_t largest : {0u, 1u, 3u, 7u}) {
    auto ranges = s.resolve(largest);
    for (std::uint32_t n = 1; n <= largest; ++n) {
      bool in = false;
      for (const auto& r : ranges) in = in || (n >= r.first && n <= r.last);
      check(in == s.contains(n, largest));
    }
  }
}

void check_helpers(const Value& v, const Options& parsed_with) {
  Options o;  // the default limits: the helpers' encodings fit them
  o.utf8 = parsed_with.utf8;
  if (auto s = astring(v)) {
    auto back = parse_values(encode_astring(*s, o.utf8), o);
    auto* vs = std::get_if<std::vector<Value>>(&back);
    check(vs && vs->size() == 1 && astring((*vs)[0]) == s);
  }
  if (auto n = nstring(v)) {
    auto back = parse_values(encode_nstring(*n, o.utf8), o);
    auto* vs = std::get_if<std::vector<Value>>(&back);
    check(vs && vs->size() == 1 && nstring((*vs)[0]) == n);
  }
  if (auto m = mailbox(v)) check(astring(v).has_value());
  if (auto t = tag(v)) check(is_tag(*t) && t->find('+') == std::string::npos);
  if (auto n = nz_number(v)) check(*n > 0 && number(v) == n);
  if (auto s = sequence_set(v)) check_sequence_set(*s);
  for (const Value& item : v.items) check_helpers(item, parsed_with);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  Options o;
  o.utf8 = (data[0] & 1) != 0;
  o.literal_minus = (data[0] & 2) != 0;
  if (data[0] & 4) o.limits = Limits{.max_depth = 3, .max_items = 8, .max_string = 16, .max_literal = 64};
  std::size_t chunk = (data[0] >> 4) + 1;
  std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);

  auto r = parse_values(wire, o);
  auto pieces = parse_in_pieces(wire, o, chunk);
  check(r.index() == pieces.index());
  if (auto* v = std::get_if<std::vector<Value>>(&r)) {
    check(*v == std::get<std::vector<Value>>(pieces));
    std::string again = encode(*v, o.utf8);
    auto r2 = parse_values(again, o);
    auto* v2 = std::get_if<std::vector<Value>>(&r2);
    check(v2 && *v2 == *v);
    check(encode(*v2, o.utf8) == again);
    for (const Value& x : *v) check_helpers(x, o);
  } else {
    check(std::get<Error>(r).kind == std::get<Error>(pieces).kind);
  }

  if (auto s = parse_sequence_set(wire)) check_sequence_set(*s);

  Options big;  // quote_or_literal's output always fits the default limits but for its length
  big.utf8 = o.utf8;
  big.limits.max_literal = wire.size();
  auto q = parse_values(quote_or_literal(wire, o.utf8), big);
  auto* qv = std::get_if<std::vector<Value>>(&q);
  check(qv && qv->size() == 1 && (*qv)[0].text == wire &&
        ((*qv)[0].kind == Value::Kind::Quoted || (*qv)[0].kind == Value::Kind::Literal));
  (void)trailing_literal(wire);
  return 0;
}
