#include <cmail/imap/codec.h>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace cmail::imap;
using Kind = Value::Kind;

namespace {

std::vector<Value> parse_ok(std::string_view wire, const Options& o = {}) {
  auto r = parse_values(wire, o);
  if (auto* e = std::get_if<Error>(&r)) FAIL_CHECK("parse failed: ", e->message);
  auto* v = std::get_if<std::vector<Value>>(&r);
  return v ? *v : std::vector<Value>{};
}

Error parse_err(std::string_view wire, const Options& o = {}) {
  auto r = parse_values(wire, o);
  auto* e = std::get_if<Error>(&r);
  if (!e) FAIL_CHECK("parsed but should not: ", std::string(wire));
  return e ? *e : Error{};
}

}  // namespace

TEST_CASE("imap codec: character classes") {
  for (char c : std::string("()%*\"\\] {")) {
    CAPTURE(c);
    CHECK(is_atom_special(c));
    CHECK_FALSE(is_atom_char(c));
  }
  CHECK(is_atom_special('\0'));
  CHECK(is_atom_special('\x1f'));
  CHECK(is_atom_special('\x7f'));
  for (char c : std::string("aZ09.-+[<>!#&'~:,$=?@^_`|}")) {
    CAPTURE(c);
    CHECK(is_atom_char(c));
    CHECK(is_astring_char(c));
  }
  CHECK_FALSE(is_atom_char('\x80'));  // CHAR is 7-bit
  CHECK_FALSE(is_atom_char('\xff'));
  CHECK(is_astring_char(']'));  // resp-specials
  CHECK_FALSE(is_atom_char(']'));
  CHECK(is_list_wildcard('%'));
  CHECK(is_list_wildcard('*'));
  CHECK(is_list_char('%'));
  CHECK(is_list_char(']'));
  CHECK_FALSE(is_list_char('('));
  CHECK(is_quoted_special('"'));
  CHECK(is_quoted_special('\\'));
  CHECK(is_resp_special(']'));
  CHECK(is_tag_char('A'));
  CHECK_FALSE(is_tag_char('+'));
  CHECK_FALSE(is_tag_char('*'));
  CHECK(is_text_char('\t'));
  CHECK_FALSE(is_text_char('\r'));
  CHECK_FALSE(is_text_char('\n'));
  CHECK(is_atom("FLAGS"));
  CHECK_FALSE(is_atom(""));
  CHECK_FALSE(is_atom("a]"));
  CHECK(is_astring_atom("a]"));
  CHECK(is_tag("A001"));
  CHECK_FALSE(is_tag("A+1"));
  CHECK_FALSE(is_tag(""));
  CHECK(is_utf8("gr\xc3\xbc\xc3\x9f"));
  CHECK_FALSE(is_utf8("\xc3"));          // truncated
  CHECK_FALSE(is_utf8("\xc0\xaf"));      // overlong
  CHECK_FALSE(is_utf8("\xed\xa0\x80"));  // surrogate
  CHECK_FALSE(is_utf8("\xf4\x90\x80\x80"));  // over U+10FFFF
}

TEST_CASE("imap codec: numbers") {
  CHECK(parse_number("0") == 0u);
  CHECK(parse_number("007") == 7u);
  CHECK(parse_number("4294967295") == 4294967295u);
  CHECK_FALSE(parse_number("4294967296"));
  CHECK_FALSE(parse_number(""));
  CHECK_FALSE(parse_number("+1"));
  CHECK_FALSE(parse_number(" 1"));
  CHECK_FALSE(parse_number("1a"));
  CHECK_FALSE(parse_nz_number("0"));
  CHECK(parse_nz_number("1") == 1u);
  CHECK(parse_number64("9223372036854775807") == 9223372036854775807ull);
  CHECK_FALSE(parse_number64("9223372036854775808"));
  CHECK_FALSE(parse_number64("99999999999999999999"));
  CHECK_FALSE(parse_number64("18446744073709551616"));  // wraps to 0 in 64 bits
}

TEST_CASE("imap codec: trailing literal announcements") {
  CHECK(trailing_literal("A1 LOGIN {5}") == LiteralAnnouncement{5, false, false});
  CHECK(trailing_literal("A1 LOGIN {5+}") == LiteralAnnouncement{5, true, false});
  CHECK(trailing_literal("A1 APPEND box ~{310}") == LiteralAnnouncement{310, false, true});
  CHECK(trailing_literal("A1 APPEND box ~{7+}") == LiteralAnnouncement{7, true, true});
  CHECK(trailing_literal("{0}") == LiteralAnnouncement{0, false, false});
  CHECK(trailing_literal("A1 X ({3}") == LiteralAnnouncement{3, false, false});
  CHECK(trailing_literal("A1 X {9223372036854775807}") ==
        LiteralAnnouncement{9223372036854775807ull, false, false});
  const char* none[] = {
      "A1 NOOP", "A1 LOGIN {12", "A1 LOGIN {}", "A1 LOGIN {+}", "A1 LOGIN { 5}", "A1 LOGIN {5 }",
      "A1 LOGIN {-5}", "A1 LOGIN {a5}", "A1 LOGIN {5++}", "A1 LOGIN {99999999999999999999}",
      "A1 LOGIN {9223372036854775808}", "A1 LOGIN x{5}", "A1 LOGIN \"a{5}", "A1 LOGIN {5} ",
      "A1 LOGIN {5}x",
  };
  for (const char* l : none) {
    CAPTURE(l);
    CHECK_FALSE(trailing_literal(l));
  }
}

TEST_CASE("imap codec: LITERAL- refuses non-synchronizing literals over 4096 octets") {
  CHECK_FALSE(literal_minus_refuses({4096, true, false}));
  CHECK(literal_minus_refuses({4097, true, false}));
  CHECK_FALSE(literal_minus_refuses({100000, false, false}));  // synchronizing: the server may say BAD first
  Options o;
  o.literal_minus = true;
  CHECK(parse_err("A1 APPEND box {4097+}\r\n", o).kind == ErrorKind::LiteralMinus);
  Parser p(o);
  CHECK(p.feed_line("A1 APPEND box {4096+}") == Parser::State::Literal);
  CHECK(p.feed_line("A1 APPEND box {5000}") == Parser::State::Failed);  // not in state Line
  Parser q(o);
  CHECK(q.feed_line("A1 APPEND box {5000}") == Parser::State::Literal);
  Options plus;  // LITERAL+: no limit but max_literal
  CHECK(Parser(plus).feed_line("A1 APPEND box {5000+}") == Parser::State::Literal);
}

TEST_CASE("imap codec: values of a command line") {
  auto v = parse_ok("a001 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100> UID)");
  REQUIRE(v.size() == 4);
  CHECK(v[0].kind == Kind::Atom);
  CHECK(v[0].text == "a001");
  CHECK(v[1].text == "FETCH");
  CHECK(v[2].kind == Kind::Atom);
  CHECK(v[2].text == "1:*");
  REQUIRE(v[3].kind == Kind::List);
  REQUIRE(v[3].items.size() == 3);
  CHECK(v[3].items[0].text == "FLAGS");
  CHECK(v[3].items[1].kind == Kind::Atom);
  CHECK(v[3].items[1].text == "BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100>");
  CHECK(v[3].items[2].text == "UID");

  auto s = parse_ok("A2 STORE 7 +FLAGS.SILENT (\\Seen \\Deleted $Junk) \"q \\\"x\\\" \\\\\" NIL nil 0042 ()");
  REQUIRE(s.size() == 10);
  CHECK(s[2].kind == Kind::Number);
  CHECK(s[2].number == 7);
  CHECK(s[3].text == "+FLAGS.SILENT");
  REQUIRE(s[4].items.size() == 3);
  CHECK(s[4].items[0].text == "\\Seen");
  CHECK(s[4].items[2].text == "$Junk");
  CHECK(s[5].kind == Kind::Quoted);
  CHECK(s[5].text == "q \"x\" \\");
  CHECK(s[6].kind == Kind::Nil);
  CHECK(s[7].kind == Kind::Nil);
  CHECK(s[7].text == "nil");
  CHECK(s[8].kind == Kind::Number);
  CHECK(s[8].number == 42);
  CHECK(s[8].text == "0042");

  auto e = parse_ok("");
  CHECK(e.empty());
  auto r = parse_ok("* OK [PERMANENTFLAGS (\\Seen \\*)] [REFERRAL imap://u@[::1]/]");
  REQUIRE(r.size() == 4);
  CHECK(r[2].text == "[PERMANENTFLAGS (\\Seen \\*)]");
  CHECK(r[3].text == "[REFERRAL imap://u@[::1]/]");
  auto l = parse_ok("A LIST \"\" %/* a]b ~x");
  REQUIRE(l.size() == 6);
  CHECK(l[2].kind == Kind::Quoted);
  CHECK(l[2].text.empty());
  CHECK(l[3].text == "%/*");
  CHECK(l[4].text == "a]b");
  CHECK(l[5].text == "~x");
  auto big = parse_ok("X 99999999999999999999");  // over number64: an atom, for the typed helpers to refuse
  CHECK(big[1].kind == Kind::Atom);
  CHECK_FALSE(number64(big[1]));
}

TEST_CASE("imap codec: UTF-8 in quoted strings only with the flag") {
  CHECK(parse_err("A \"gr\xc3\xbc\xc3\x9f\"").kind == ErrorKind::Syntax);
  Options u;
  u.utf8 = true;
  auto v = parse_ok("A \"gr\xc3\xbc\xc3\x9f\"", u);
  REQUIRE(v.size() == 2);
  CHECK(v[1].text == "gr\xc3\xbc\xc3\x9f");
  CHECK(parse_err("A \"\xff\"", u).kind == ErrorKind::Syntax);  // not UTF-8
  CHECK(parse_err("A gr\xc3\xbc\xc3\x9f", u).kind == ErrorKind::Syntax);  // never in an atom
}

TEST_CASE("imap codec: malformed lines") {
  struct Case {
    const char* wire;
    ErrorKind kind;
  };
  const Case cases[] = {
      {"A1 FETCH 1 (FLAGS", ErrorKind::Incomplete},
      {"A1 FETCH 1 ((FLAGS)", ErrorKind::Incomplete},
      {"A1 FETCH 1 FLAGS)", ErrorKind::Syntax},
      {"A1 )", ErrorKind::Syntax},
      {"A1 (a))", ErrorKind::Syntax},
      {"A1 ( a)", ErrorKind::Syntax},
      {"A1 (a )", ErrorKind::Syntax},
      {"A1  NOOP", ErrorKind::Syntax},
      {" A1 NOOP", ErrorKind::Syntax},
      {"A1 NOOP ", ErrorKind::Syntax},
      {"A1 (a)(b)", ErrorKind::Syntax},
      {"A1 a\"b\"", ErrorKind::Syntax},
      {"A1 \"a\"b", ErrorKind::Syntax},
      {"A1 LOGIN {5", ErrorKind::Syntax},
      {"A1 LOGIN {12", ErrorKind::Syntax},
      {"A1 LOGIN {5} x", ErrorKind::Syntax},
      {"A1 LOGIN {x}", ErrorKind::Syntax},
      {"A1 LOGIN {}", ErrorKind::Syntax},
      {"A1 LOGIN {99999999999999999999}", ErrorKind::LiteralTooLarge},
      {"A1 LOGIN {9223372036854775808}", ErrorKind::LiteralTooLarge},
      {"A1 LOGIN \"abc", ErrorKind::Syntax},
      {"A1 LOGIN \"abc\\", ErrorKind::Syntax},
      {"A1 LOGIN \"abc\\\"", ErrorKind::Syntax},
      {"A1 LOGIN \"a\\b\"", ErrorKind::Syntax},
      {"A1 LOGIN \"a\rb\"", ErrorKind::Syntax},
      {"A1 LOGIN \"a\nb\"", ErrorKind::Syntax},
      {"A1 LOGIN caf\xc3\xa9", ErrorKind::Syntax},
      {"A1 LOGIN \x80", ErrorKind::Syntax},
      {"A1 LOGIN a\tb", ErrorKind::Syntax},
      {"A1 BODY[HEADER", ErrorKind::Syntax},
      {"A1 BODY[HEADER.FIELDS ({5}", ErrorKind::Syntax},
      {"A1 BODY[\"]", ErrorKind::Syntax},
      {"A1 a{5}", ErrorKind::Syntax},
      {"A1 {3}\r\nabc{3}\r\ndef", ErrorKind::Syntax},  // no SP after a literal
      {"A1 {3}\r\nab", ErrorKind::Incomplete},
      {"A1 {3}", ErrorKind::Incomplete},
      {"A1 NOOP\r\nA2 NOOP", ErrorKind::Syntax},
  };
  for (const Case& c : cases) {
    CAPTURE(c.wire);
    Error e = parse_err(c.wire);
    CHECK(e.kind == c.kind);
    CHECK_FALSE(e.message.empty());
  }
  using namespace std::string_literals;
  CAPTURE("NUL");
  CHECK(parse_err("A1 LOGIN a\0b"s).kind == ErrorKind::Syntax);
  CHECK(parse_err("A1 LOGIN \"a\0b\""s).kind == ErrorKind::Syntax);
  CHECK(parse_err("A1 LOGIN {3}\r\na\0b"s).kind == ErrorKind::NulInLiteral);
  auto bin = parse_ok("A1 APPEND x ~{3}\r\na\0b"s);
  REQUIRE(bin.size() == 4);
  CHECK(bin[3].kind == Kind::Literal);
  CHECK(bin[3].binary);
  CHECK(bin[3].text == "a\0b"s);
}

TEST_CASE("imap codec: limits are distinct errors") {
  Options o;
  o.limits.max_depth = 3;
  CHECK(parse_ok("A (((x)))", o).size() == 2);
  CHECK(parse_err("A ((((x))))", o).kind == ErrorKind::TooDeep);
  Options d;  // the default: 32
  std::string deep = "A " + std::string(32, '(') + std::string(32, ')');
  CHECK(parse_ok(deep, d).size() == 2);
  CHECK(parse_err("A " + std::string(33, '(') + std::string(33, ')'), d).kind == ErrorKind::TooDeep);

  Options n;
  n.limits.max_items = 4;
  CHECK(parse_ok("A (b c)", n).size() == 2);  // A, the list, b, c
  CHECK(parse_err("A (b c) d", n).kind == ErrorKind::TooManyItems);
  CHECK(parse_err("A b {1}\r\nx c d", n).kind == ErrorKind::TooManyItems);

  Options s;
  s.limits.max_string = 4;
  CHECK(parse_ok("abcd \"wxyz\"", s).size() == 2);
  CHECK(parse_err("abcde", s).kind == ErrorKind::StringTooLong);
  CHECK(parse_err("\"abcde\"", s).kind == ErrorKind::StringTooLong);
  CHECK(parse_ok("{6}\r\nabcdef", s).size() == 1);  // literals have their own limit

  Options l;
  l.limits.max_literal = 10;
  CHECK(parse_ok("{10}\r\n0123456789", l).size() == 1);
  CHECK(parse_err("{11}\r\n01234567890", l).kind == ErrorKind::LiteralTooLarge);
  CHECK(parse_err("{11+}\r\n01234567890", l).kind == ErrorKind::LiteralTooLarge);
  CHECK(std::string(to_string(ErrorKind::LiteralTooLarge)) == "LiteralTooLarge");
}

TEST_CASE("imap codec: a line with literals arrives in pieces") {
  Parser p;
  // A1 LOGIN {3}  /  bob  /  {6+}  /  secret  /  "" (the end)
  CHECK(p.feed_line("A1 LOGIN {3}") == Parser::State::Literal);
  CHECK(p.literal() == LiteralAnnouncement{3, false, false});  // synchronizing: send "+ "
  CHECK(p.literal_remaining() == 3);
  CHECK(p.feed_literal("b") == Parser::State::Literal);  // any split
  CHECK(p.literal_remaining() == 2);
  CHECK(p.feed_literal("ob") == Parser::State::Line);
  CHECK(p.feed_line(" {6+}") == Parser::State::Literal);
  CHECK(p.literal().non_synchronizing);
  CHECK(p.feed_literal("secret") == Parser::State::Line);
  CHECK(p.feed_line("") == Parser::State::Done);
  REQUIRE(p.values().size() == 4);
  CHECK(astring(p.values()[2]) == std::optional<std::string>("bob"));
  CHECK(astring(p.values()[3]) == std::optional<std::string>("secret"));

  // Inside a list, and the rest of the line after the literal.
  p.reset();
  CHECK(p.state() == Parser::State::Line);
  CHECK(p.feed_line("A2 APPEND INBOX (\\Seen {2}") == Parser::State::Literal);
  CHECK(p.feed_literal("hi") == Parser::State::Line);
  CHECK(p.feed_line(") {0}") == Parser::State::Literal);
  CHECK(p.literal_remaining() == 0);
  CHECK(p.feed_literal("") == Parser::State::Line);
  CHECK(p.feed_line(" ~{1}") == Parser::State::Literal);
  CHECK(p.literal().binary);
  CHECK(p.feed_literal(std::string_view("\0", 1)) == Parser::State::Line);
  CHECK(p.feed_line(" end") == Parser::State::Done);
  auto v = p.take_values();
  REQUIRE(v.size() == 7);
  REQUIRE(v[3].items.size() == 2);
  CHECK(v[3].items[1] == Value::literal("hi"));
  CHECK(v[4] == Value::literal(""));
  CHECK(v[5] == Value::literal(std::string_view("\0", 1), true));
  CHECK(v[6].text == "end");
  CHECK(encode(v) == std::string("A2 APPEND INBOX (\\Seen {2}\r\nhi) {0}\r\n ~{1}\r\n") + std::string("\0", 1) + " end");

  // An error shows in the piece that has it; the next line starts clean after reset().
  p.reset();
  CHECK(p.feed_line("A3 LOGIN \"unterminated {5}") == Parser::State::Failed);
  CHECK(p.error().kind == ErrorKind::Syntax);
  p.reset();
  CHECK(p.feed_line("A3 LOGIN {5}") == Parser::State::Literal);
  CHECK(p.feed_literal("toolongforit") == Parser::State::Failed);  // more than announced
  p.reset();
  CHECK(p.feed_line("A4 X {2}") == Parser::State::Literal);
  CHECK(p.feed_literal("ab") == Parser::State::Line);
  CHECK(p.feed_line("x") == Parser::State::Failed);  // no SP after the literal
  p.reset();
  CHECK(p.feed_line("A5 X ({1}") == Parser::State::Literal);
  CHECK(p.feed_literal("a") == Parser::State::Line);
  CHECK(p.feed_line("") == Parser::State::Failed);  // the list never closed
  CHECK(p.error().kind == ErrorKind::Incomplete);
}

TEST_CASE("imap codec: typed helpers") {
  auto v = parse_ok("tag1 inbox InBoX \"INBOX\" {5}\r\ninBOX other \"q s\" NIL 12 0 4294967296 a+b \\Seen ~{1}\r\nx a]");
  REQUIRE(v.size() == 15);
  CHECK(tag(v[0]) == std::optional<std::string>("tag1"));
  CHECK(tag(v[11]) == std::nullopt);  // "+" is not a tag char
  CHECK(tag(v[8]) == std::optional<std::string>("12"));
  CHECK(tag(v[6]) == std::nullopt);   // quoted
  for (int i = 1; i <= 4; ++i) {
    CAPTURE(i);
    CHECK(mailbox(v[i]) == std::optional<std::string>("INBOX"));
  }
  CHECK(mailbox(v[5]) == std::optional<std::string>("other"));
  CHECK(astring(v[6]) == std::optional<std::string>("q s"));
  CHECK(astring(v[7]) == std::optional<std::string>("NIL"));  // an astring may be "NIL"
  CHECK(astring(v[14]) == std::optional<std::string>("a]"));
  CHECK(astring(v[12]) == std::nullopt);  // "\" is no ASTRING-CHAR
  CHECK(astring(v[13]) == std::nullopt);  // literal8 is not a string
  CHECK(atom(v[14]) == std::nullopt);     // "]" is no ATOM-CHAR
  CHECK(atom(v[5]) == std::optional<std::string>("other"));
  CHECK(string(v[6]) == std::optional<std::string>("q s"));
  CHECK(string(v[4]) == std::optional<std::string>("inBOX"));
  CHECK(string(v[5]) == std::nullopt);
  CHECK(nstring(v[7]) == std::optional<std::optional<std::string>>(std::optional<std::string>()));
  CHECK(nstring(v[6]) == std::optional<std::optional<std::string>>(std::string("q s")));
  CHECK(nstring(v[5]) == std::nullopt);
  CHECK(number(v[8]) == 12u);
  CHECK(number(v[9]) == 0u);
  CHECK(nz_number(v[9]) == std::nullopt);
  CHECK(nz_number(v[8]) == 12u);
  CHECK(number(v[10]) == std::nullopt);
  CHECK(number(v[5]) == std::nullopt);
  CHECK(number64(v[8]) == 12u);
  auto big = parse_ok("4294967296");
  CHECK(number(big[0]) == std::nullopt);
  CHECK(number64(big[0]) == 4294967296ull);
}

TEST_CASE("imap codec: sequence sets") {
  struct Case {
    const char* in;
    const char* canonical;
  };
  const Case ok[] = {
      {"1", "1"},
      {"1,2,3,5:7", "1:3,5:7"},
      {"7:5,1:2,3", "1:3,5:7"},
      {"1:4,2:3", "1:4"},
      {"4,2,3,1", "1:4"},
      {"10:12,1:9", "1:12"},
      {"*", "*"},
      {"*:*", "*"},
      {"1:*", "1:*"},
      {"*:1", "1:*"},
      {"5:*,3:*", "3:*,5:*"},
      {"*,4:*", "4:*"},
      {"2,*,1", "1:2,*"},
      {"4294967295", "4294967295"},
      {"4294967294,4294967295,1", "1,4294967294:4294967295"},
      {"$", "$"},
  };
  for (const Case& c : ok) {
    CAPTURE(c.in);
    auto s = parse_sequence_set(c.in);
    REQUIRE(s.has_value());
    CHECK(s->to_string() == c.canonical);
    auto again = parse_sequence_set(s->to_string());
    REQUIRE(again.has_value());
    CHECK(*again == *s);
  }
  const char* bad[] = {"", "0", "0:5", "5:0", "4294967296", "1,", ",1", "1,,2", "1:", ":1", "1:2:3",
                       "a", "1 ", " 1", "$,1", "1,$", "$$", "-1", "+1", "1:*:2", "**"};
  for (const char* b : bad) {
    CAPTURE(b);
    CHECK_FALSE(parse_sequence_set(b));
  }

  auto s = parse_sequence_set("2:4,9").value();
  CHECK(s.contains(2, 10));
  CHECK(s.contains(4, 10));
  CHECK_FALSE(s.contains(5, 10));
  CHECK(s.contains(9, 10));
  CHECK(s.max_named() == 9);
  std::vector<std::uint32_t> seen;
  s.for_each(5, [&seen](std::uint32_t n) { seen.push_back(n); });
  CHECK(seen == std::vector<std::uint32_t>{2, 3, 4});  // 9 does not exist in 5

  // "n:*" when the largest number is below n: from the largest to n (RFC 9051 9: seq-range).
  auto up = parse_sequence_set("5:*").value();
  CHECK(up.contains(3, 3));
  CHECK_FALSE(up.contains(2, 3));
  CHECK(up.contains(4, 3));  // the range is 3:5
  CHECK(up.contains(7, 10));
  CHECK_FALSE(up.contains(4, 10));
  CHECK(up.resolve(3) == std::vector<SequenceSet::Range>{{3, 3}});
  CHECK(up.resolve(10) == std::vector<SequenceSet::Range>{{5, 10}});
  CHECK(up.resolve(0).empty());
  CHECK_FALSE(up.contains(1, 0));
  CHECK(up.max_named() == 5);

  auto star = parse_sequence_set("1:2,*").value();
  CHECK(star.contains(8, 8));
  CHECK_FALSE(star.contains(7, 8));
  CHECK(star.resolve(8) == std::vector<SequenceSet::Range>{{1, 2}, {8, 8}});
  CHECK(star.resolve(3) == std::vector<SequenceSet::Range>{{1, 3}});  // 3 is adjacent: merged
  CHECK(star.max_named() == 2);

  auto two = parse_sequence_set("3:*,8:*").value();  // from min(3, L) to max(8, L)
  CHECK(two.resolve(5) == std::vector<SequenceSet::Range>{{3, 5}});
  CHECK(two.contains(8, 5));
  CHECK_FALSE(two.contains(9, 5));
  CHECK(two.contains(2, 2));
  CHECK_FALSE(two.contains(1, 2));

  auto saved = parse_sequence_set("$").value();
  CHECK(saved.saved);
  CHECK_FALSE(saved.contains(1, 10));
  CHECK(saved.resolve(10).empty());

  std::uint64_t count = 0;
  parse_sequence_set("4294967294:4294967295").value().for_each(4294967295u, [&count](std::uint32_t) { ++count; });
  CHECK(count == 2);  // no wrap at 2^32-1

  auto v = parse_ok("A FETCH 1:3,* FLAGS");
  CHECK(sequence_set(v[2]).value().to_string() == "1:3,*");
  CHECK(sequence_set(v[3]) == std::nullopt);
  CHECK(sequence_set(parse_ok("\"1\"")[0]) == std::nullopt);  // a quoted string is no sequence set
}

TEST_CASE("imap codec: encoding") {
  CHECK(quote_or_literal("hello world") == "\"hello world\"");
  CHECK(quote_or_literal("") == "\"\"");
  CHECK(quote_or_literal("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote_or_literal("two\r\nlines") == "{10}\r\ntwo\r\nlines");
  CHECK(quote_or_literal("bare\nlf") == "{7}\r\nbare\nlf");
  CHECK(quote_or_literal("gr\xc3\xbc\xc3\x9f") == "{6}\r\ngr\xc3\xbc\xc3\x9f");  // 8-bit: never quoted without the flag
  CHECK(quote_or_literal("gr\xc3\xbc\xc3\x9f", true) == "\"gr\xc3\xbc\xc3\x9f\"");
  CHECK(quote_or_literal("\xff", true) == "{1}\r\n\xff");  // not UTF-8
  CHECK(quote_or_literal(std::string_view("a\0b", 3)) == std::string("~{3}\r\na\0b", 9));
  std::string long_text(kMaxQuoted + 1, 'x');
  CHECK(quote_or_literal(long_text) == "{1025}\r\n" + long_text);
  CHECK(quote_or_literal(std::string(kMaxQuoted, 'x')).front() == '"');
  CHECK(can_quote("tab\there"));
  CHECK_FALSE(can_quote("cr\r"));

  CHECK(encode_astring("bob") == "bob");
  CHECK(encode_astring("a]") == "a]");
  CHECK(encode_astring("NIL") == "\"NIL\"");
  CHECK(encode_astring("nil") == "\"nil\"");
  CHECK(encode_astring("") == "\"\"");
  CHECK(encode_astring("two words") == "\"two words\"");
  CHECK(encode_astring("a[b") == "\"a[b\"");
  CHECK(encode_astring("%") == "\"%\"");
  CHECK(encode_nstring(std::nullopt) == "NIL");
  CHECK(encode_nstring(std::string("NIL")) == "\"NIL\"");

  Value list = Value::list({Value::atom("FLAGS"), Value::list({Value::atom("\\Seen")}), Value::nil(),
                            Value::quoted("a \"q\""), Value::literal("x\r\ny"), Value::atom("12")});
  CHECK(list.items[5].kind == Kind::Number);
  CHECK(list.items[2].kind == Kind::Nil);
  std::string wire = encode(list);
  CHECK(wire == "(FLAGS (\\Seen) NIL \"a \\\"q\\\"\" {4}\r\nx\r\ny 12)");
  auto back = parse_ok(wire);
  REQUIRE(back.size() == 1);
  CHECK(back[0] == list);
  CHECK(encode(Value::quoted("line\r\nbreak")) == "{11}\r\nline\r\nbreak");  // never a quoted CR LF
}

TEST_CASE("imap codec: round trips of parsed lines") {
  const char* lines[] = {
      "A1 LOGIN {3}\r\nbob {6+}\r\nsecret",
      "* 12 FETCH (FLAGS (\\Seen) UID 4827313 BODY[HEADER.FIELDS (FROM)] {20}\r\nFrom: a@example.test)",
      "A2 APPEND INBOX (\\Seen) \"7-Feb-1994 21:52:25 -0800\" ~{5}\r\nab\r\nc",
      "A3 SEARCH CHARSET UTF-8 TEXT {4}\r\n\xe2\x82\xac!",
      "A4 LIST \"\" \"%\" RETURN (CHILDREN)",
      "* LIST (\\HasNoChildren) \".\" INBOX.Sent",
      "A5 UID STORE 1:3,5,7:* +FLAGS.SILENT (\\Deleted)",
      "A6 X \"\" () (()) ((a) (b c)) NIL nil 0 007",
      "A7 X BINARY.PEEK[1.2]<0.1024> {0}\r\n",
  };
  for (const char* l : lines) {
    CAPTURE(l);
    auto v = parse_ok(l);
    CHECK_FALSE(v.empty());
    std::string again = encode(v);
    auto w = parse_ok(again);
    CHECK(w == v);
  }
  // Encoding a parsed line gives it back, but for "{N+}" (written "{N}").
  CHECK(encode(parse_ok("A1 LOGIN {3}\r\nbob {6+}\r\nsecret")) == "A1 LOGIN {3}\r\nbob {6}\r\nsecret");
  CHECK(encode(parse_ok("A (a \"b c\" (d)) NIL")) == "A (a \"b c\" (d)) NIL");
}

TEST_CASE("imap codec: modified UTF-7 mailbox names (RFC 3501 5.1.3)") {
  // RFC 3501 5.1.3's example, and its pieces.
  const std::string jp = "~peter/mail/\xE5\x8F\xB0\xE5\x8C\x97/\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E";
  CHECK(mutf7_encode(jp) == "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  CHECK(mutf7_decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == jp);
  CHECK(mutf7_encode("A&B") == "A&-B");
  CHECK(mutf7_decode("A&-B") == "A&B");
  CHECK(mutf7_encode("Entw\xC3\xBCrfe") == "Entw&APw-rfe");
  CHECK(mutf7_decode("Entw&APw-rfe") == "Entw\xC3\xBCrfe");
  // Outside the BMP: a surrogate pair. A tab is not printable: encoded.
  CHECK(mutf7_decode(mutf7_encode("\xF0\x9F\x93\xA7 mail")) == "\xF0\x9F\x93\xA7 mail");
  CHECK(mutf7_encode("a\tb") == "a&AAk-b");
  CHECK(mutf7_encode("INBOX") == "INBOX");
  // What the rule does not allow.
  CHECK_FALSE(mutf7_decode("&U,BTFw"));        // unterminated
  CHECK_FALSE(mutf7_decode("&AGE-"));          // "a" must stand for itself
  CHECK_FALSE(mutf7_decode("&APw-&APw-"));     // adjacent runs
  CHECK_FALSE(mutf7_decode("&U/BTFw-"));       // "/" is not a digit here
  CHECK_FALSE(mutf7_decode("&2D0-"));          // a lone high surrogate
  CHECK_FALSE(mutf7_decode("&APx-"));          // bits left set
  CHECK_FALSE(mutf7_decode("Entw\xC3\xBCrfe"));  // 8-bit octets
}
