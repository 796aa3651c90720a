#include <cmail/mail/structure.h>

#include <doctest/doctest.h>

#include "seed.h"

#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace cmail::mail;

namespace {

std::string crlf(std::string_view s) {  // "\n" -> "\r\n", so that the messages read easily
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

std::string_view header_of(std::string_view msg, const Part& p) { return msg.substr(p.header_offset, p.header_length); }
std::string_view body_of(std::string_view msg, const Part& p) { return msg.substr(p.body_offset, p.body_length); }

Part parse_in(std::string_view msg, const std::vector<std::size_t>& cuts, StructureLimits limits = {}) {
  StructureParser parser(limits);
  std::size_t at = 0;
  for (std::size_t c : cuts) {
    parser.feed(msg.substr(at, c - at));
    at = c;
  }
  parser.feed(msg.substr(at));
  return parser.finish();
}

// The invariants of every tree: slices inside the message, header then body, children inside
// their parent's body and in order, the stored form round trips.
void check_tree(std::string_view msg, const Part& p) {
  CHECK(p.header_offset + p.header_length == p.body_offset);
  CHECK(p.body_offset + p.body_length <= msg.size());
  std::uint64_t at = p.body_offset;
  for (const Part& c : p.children) {
    CHECK(c.header_offset >= at);
    CHECK(c.body_offset + c.body_length <= p.body_offset + p.body_length);
    at = c.body_offset + c.body_length;
    check_tree(msg, c);
  }
  if (p.is_message() && !p.children.empty()) {
    REQUIRE(p.children.size() == 1);
    CHECK(p.children[0].header_offset == p.body_offset);
    CHECK(p.children[0].envelope.has_value());
  }
}

// Parses whole, byte by byte and in random pieces; all must agree. Returns the tree.
Part parse(std::string_view msg, StructureLimits limits = {}) {
  Part whole = parse_structure(msg, limits);
  check_tree(msg, whole);
  auto stored = decode_structure(encode_structure(whole));
  REQUIRE(stored.has_value());
  CHECK(*stored == whole);
  if (msg.size() < 20000) {
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < msg.size(); ++i) bytes.push_back(i);
    CHECK(parse_in(msg, bytes, limits) == whole);
  }
  auto& rng = cmail::test::test_rng();
  for (int round = 0; round < 5; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    while (!msg.empty()) {
      at += std::uniform_int_distribution<std::size_t>(1, 1 + msg.size() / 4)(rng);
      if (at >= msg.size()) break;
      cuts.push_back(at);
    }
    CHECK(parse_in(msg, cuts, limits) == whole);
  }
  return whole;
}

std::size_t count_parts(const Part& p) {
  std::size_t n = 1;
  for (const Part& c : p.children) n += count_parts(c);
  return n;
}

}  // namespace

TEST_CASE("mime structure: a plain message, CRLF") {
  std::string msg = crlf(
      "Date: Tue, 24 Nov 2026 10:03:46 +0000\n"
      "From: Alice Example <alice@example.org>\n"
      "Subject: a test\n"
      "  folded\n"
      "To: bob@example.net, \"Carol C.\" <carol@example.net>\n"
      "Message-ID: <1@example.org>\n"
      "\n"
      "line one\n"
      "line two\n");
  Part p = parse(msg);
  CHECK(p.header_offset == 0);
  CHECK(header_of(msg, p) == msg.substr(0, msg.find("\r\n\r\n") + 4));
  CHECK(body_of(msg, p) == "line one\r\nline two\r\n");
  CHECK(p.body_lines == 2);
  CHECK(p.type == "text");
  CHECK(p.subtype == "plain");
  CHECK(p.params == std::vector<Param>{{"charset", "us-ascii"}});  // RFC 2045 5.2
  CHECK(p.encoding == "7bit");
  CHECK(p.children.empty());
  REQUIRE(p.envelope.has_value());
  const Envelope& e = *p.envelope;
  CHECK(e.date == "Tue, 24 Nov 2026 10:03:46 +0000");
  CHECK(e.subject == "a test  folded");  // RFC 5322 2.2.3 unfolding
  CHECK(e.message_id == "<1@example.org>");
  CHECK_FALSE(e.in_reply_to.has_value());
  CHECK_FALSE(e.sender.raw.has_value());  // stored as it is; the encoder falls back to From
  CHECK_FALSE(e.reply_to.raw.has_value());
  CHECK(e.from.raw == "Alice Example <alice@example.org>");
  REQUIRE(e.from.addresses.size() == 1);
  CHECK(e.from.addresses[0].name == "Alice Example");
  CHECK(e.from.addresses[0].mailbox == "alice");
  CHECK(e.from.addresses[0].host == "example.org");
  REQUIRE(e.to.addresses.size() == 2);
  CHECK(e.to.addresses[0].name.empty());
  CHECK(e.to.addresses[0].mailbox == "bob");
  CHECK(e.to.addresses[1].name == "Carol C.");
}

TEST_CASE("mime structure: bare LF line ends count and slice the same way") {
  std::string msg = "Subject: x\nContent-Type: text/plain; charset=utf-8\n\na\nb\nc";
  Part p = parse(msg);
  CHECK(p.header_length == 52);
  CHECK(body_of(msg, p) == "a\nb\nc");
  CHECK(p.body_lines == 3);  // the last line has no line end
  CHECK(p.params == std::vector<Param>{{"charset", "utf-8"}});
  // Mixed line ends, and a CR that ends no line.
  std::string mixed = "Subject: y\r\n\nx\ry\r\nz\n";
  Part q = parse(mixed);
  CHECK(q.header_length == 13);
  CHECK(body_of(mixed, q) == "x\ry\r\nz\n");
  CHECK(q.body_lines == 2);
}

TEST_CASE("mime structure: multipart/mixed with preamble, epilogue and transport padding") {
  std::string msg = crlf(
      "Content-Type: multipart/mixed; boundary=\"frontier\"\n"
      "\n"
      "This is the preamble.\n"
      "--frontier \t\n"
      "Content-Type: text/plain\n"
      "\n"
      "part one\n"
      "text --frontier in the middle of a line\n"
      "--frontierX is another boundary\n"
      "--frontier\n"
      "Content-Type: application/octet-stream\n"
      "Content-Transfer-Encoding: BASE64\n"
      "\n"
      "AAEC\n"
      "\n"
      "--frontier--  \n"
      "the epilogue\n");
  Part p = parse(msg);
  CHECK(p.type == "multipart");
  CHECK(p.subtype == "mixed");
  CHECK(p.param("boundary") == "frontier");
  REQUIRE(p.children.size() == 2);
  const Part& a = p.children[0];
  CHECK(header_of(msg, a) == "Content-Type: text/plain\r\n\r\n");
  CHECK(body_of(msg, a) == "part one\r\ntext --frontier in the middle of a line\r\n--frontierX is another boundary");
  CHECK(a.body_lines == 3);
  CHECK(a.params.empty());
  const Part& b = p.children[1];
  CHECK(b.type == "application");
  CHECK(b.subtype == "octet-stream");
  CHECK(b.encoding == "base64");
  CHECK(body_of(msg, b) == "AAEC\r\n");  // the CRLF before the delimiter belongs to it
  CHECK(b.body_lines == 1);
  CHECK(a.header_offset == msg.find("Content-Type: text/plain"));
  CHECK(body_of(msg, p) == msg.substr(msg.find("This is")));
}

TEST_CASE("mime structure: alternative inside mixed, and an outer boundary ends the inner multipart") {
  std::string msg = crlf(
      "Content-Type: multipart/mixed; boundary=outer\n"
      "\n"
      "--outer\n"
      "Content-Type: multipart/alternative; boundary=inner\n"
      "\n"
      "--inner\n"
      "Content-Type: text/plain\n"
      "\n"
      "plain\n"
      "--inner\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>html</p>\n"
      "--inner--\n"
      "--outer\n"
      "Content-Type: multipart/alternative; boundary=inner2\n"
      "\n"
      "--inner2\n"
      "\n"
      "no close delimiter for inner2\n"
      "--outer--\n");
  Part p = parse(msg);
  REQUIRE(p.children.size() == 2);
  const Part& alt = p.children[0];
  CHECK(alt.subtype == "alternative");
  REQUIRE(alt.children.size() == 2);
  CHECK(body_of(msg, alt.children[0]) == "plain");
  CHECK(alt.children[0].body_lines == 1);
  CHECK(alt.children[1].subtype == "html");
  CHECK(body_of(msg, alt.children[1]) == "<p>html</p>");
  CHECK(body_of(msg, alt) == "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\n"
                             "Content-Type: text/html\r\n\r\n<p>html</p>\r\n--inner--");
  const Part& alt2 = p.children[1];
  REQUIRE(alt2.children.size() == 1);
  CHECK(header_of(msg, alt2.children[0]) == "\r\n");  // a part without header fields
  CHECK(body_of(msg, alt2.children[0]) == "no close delimiter for inner2");
  CHECK(alt2.children[0].type == "text");
}

TEST_CASE("mime structure: multipart/related and every Content-* field") {
  std::string msg = crlf(
      "Content-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\n"
      "\n"
      "--rel\n"
      "Content-Type: text/html; charset=UTF-8\n"
      "Content-Language: en-GB, (comment) fr\n"
      "\n"
      "<img src=cid:img1>\n"
      "--rel\n"
      "Content-Type: image/PNG; name=\"a.png\"\n"
      "Content-ID: <img1@example.org>\n"
      "Content-Description: a picture\n"
      "Content-Disposition: INLINE; filename=\"a.png\"; size=3\n"
      "Content-Location: http://example.org/a.png\n"
      "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
      "Content-Transfer-Encoding: base64 (why not)\n"
      "\n"
      "iVBO\n"
      "--rel--\n");
  Part p = parse(msg);
  CHECK(p.subtype == "related");
  CHECK(p.params == std::vector<Param>{{"boundary", "rel"}, {"type", "text/html"}});
  REQUIRE(p.children.size() == 2);
  CHECK(p.children[0].params == std::vector<Param>{{"charset", "UTF-8"}});
  CHECK(p.children[0].languages == std::vector<std::string>{"en-GB", "fr"});
  const Part& img = p.children[1];
  CHECK(img.type == "image");
  CHECK(img.subtype == "png");
  CHECK(img.id == "<img1@example.org>");
  CHECK(img.description == "a picture");
  CHECK(img.disposition == "inline");
  CHECK(img.disposition_params == std::vector<Param>{{"filename", "a.png"}, {"size", "3"}});
  CHECK(img.location == "http://example.org/a.png");
  CHECK(img.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ==");
  CHECK(img.encoding == "base64");
  CHECK(body_of(msg, img) == "iVBO");
  CHECK_FALSE(img.envelope.has_value());
}

TEST_CASE("mime structure: message/rfc822 with its own multipart and envelope") {
  std::string inner = crlf(
      "From: Inner <inner@example.com>\n"
      "Subject: inside\n"
      "Content-Type: multipart/mixed; boundary=in\n"
      "\n"
      "--in\n"
      "\n"
      "inner text\n"
      "--in--\n");
  std::string msg = crlf(
      "Subject: outside\n"
      "Content-Type: multipart/mixed; boundary=out\n"
      "\n"
      "--out\n"
      "Content-Type: message/rfc822\n"
      "\n") + inner + crlf("\n--out--\n");
  Part p = parse(msg);
  CHECK(p.envelope->subject == "outside");
  REQUIRE(p.children.size() == 1);
  const Part& m = p.children[0];
  CHECK(m.is_message());
  CHECK(body_of(msg, m) == inner);
  CHECK(m.body_lines == 8);
  CHECK_FALSE(m.envelope.has_value());  // the envelope is the encapsulated message's
  REQUIRE(m.children.size() == 1);
  const Part& enc = m.children[0];
  REQUIRE(enc.envelope.has_value());
  CHECK(enc.envelope->subject == "inside");
  CHECK(enc.envelope->from.addresses.at(0).mailbox == "inner");
  CHECK(enc.header_offset == m.body_offset);
  CHECK(enc.body_offset + enc.body_length == m.body_offset + m.body_length);
  REQUIRE(enc.children.size() == 1);
  CHECK(body_of(msg, enc.children[0]) == "inner text");
  // message/global (RFC 6532) is a message too; a top-level message/rfc822 as well.
  std::string g = crlf("Content-Type: message/global\n\nSubject: \xC3\xA9t\xC3\xA9\n\nbody\n");
  Part q = parse(g);
  REQUIRE(q.children.size() == 1);
  CHECK(q.children[0].envelope->subject == "\xC3\xA9t\xC3\xA9");
  CHECK(body_of(g, q.children[0]) == "body\r\n");
}

TEST_CASE("mime structure: RFC 2231 parameters, quoted strings and comments") {
  std::string msg = crlf(
      "Content-Type: application/x-stuff (a comment);\n"
      " title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
      " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n"
      " title*2=\"isn't it!\"; plain=\"a \\\"quoted\\\" (value)\" ;\n"
      " euro*=utf-8'en'%E2%82%AC; latin*=iso-8859-1''%E9t%E9;\n"
      " jp*=iso-2022-jp'ja'%1B%24B; jp2*0*=iso-2022-jp''%1B; jp2*1=\"a b\";\n"
      " name=\"plain name\"; name*=utf-8''2231%20name; Dup=1; dup=2; gap*0=a; gap*2=c;\n"
      " boundary=----=_Part_1 (comment)\n"
      "\n");
  Part p = parse(msg);
  CHECK(p.type == "application");
  CHECK(p.subtype == "x-stuff");
  CHECK(p.param("title") == "This is even more ***fun*** isn't it!");
  CHECK(p.param("plain") == "a \"quoted\" (value)");
  CHECK(p.param("euro") == "\xE2\x82\xAC");
  CHECK(p.param("latin") == "\xC3\xA9t\xC3\xA9");     // ISO-8859-1 made UTF-8
  CHECK(p.param("jp*") == "iso-2022-jp'ja'%1B%24B");   // another charset: as written
  CHECK(p.param("jp2*") == "iso-2022-jp''%1Ba%20b");   // segments joined into one value
  CHECK(p.param("name") == "2231 name");               // RFC 2231 wins over the plain form
  CHECK(p.param("dup") == "1");                        // names lower-cased, first wins
  CHECK(p.param("gap") == "a");                        // a missing section ends the value
  CHECK(p.param("boundary") == "----=_Part_1");
  // An unterminated comment ending in a backslash, an unterminated quoted string.
  Part c = parse("Content-Type: text/html; a=\"b (c\\\r\nContent-Disposition: inline (x\\\r\n\r\n");
  CHECK(c.subtype == "html");
  CHECK(c.param("a") == "b (c\\");  // the lone backslash is kept
  CHECK(c.disposition == "inline");
  // RFC 2045 5.2: a Content-Type without a subtype is no Content-Type.
  Part q = parse(crlf("Content-Type: text\n\nx"));
  CHECK(q.subtype == "plain");
  CHECK(q.params == std::vector<Param>{{"charset", "us-ascii"}});
}

TEST_CASE("mime structure: RFC 2047 encoded words") {
  CHECK(decode_encoded_words("=?utf-8?B?4oKsIDEwMA==?=") == "\xE2\x82\xAC 100");
  CHECK(decode_encoded_words("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "Andr\xC3\xA9 Pirard");
  CHECK(decode_encoded_words("=?us-ascii?q?a_b?=") == "a b");
  CHECK(decode_encoded_words("=?utf-8?q?a?= \r\n =?utf-8?q?b?=") == "ab");  // RFC 2047 6.2
  CHECK(decode_encoded_words("=?utf-8?q?a?= b =?utf-8?q?c?=") == "a b c");
  CHECK(decode_encoded_words("=?utf-8*en?Q?x?=") == "x");  // RFC 2231 5: language
  CHECK(decode_encoded_words("=?koi8-r?B?9MXT1A==?= x") == "=?koi8-r?B?9MXT1A==?= x");  // unknown
  CHECK(decode_encoded_words("=?utf-8?X?abc?=") == "=?utf-8?X?abc?=");
  CHECK(decode_encoded_words("=?utf-8?Q?a b?=") == "=?utf-8?Q?a b?=");  // no space in a word
  CHECK(decode_encoded_words("=?utf-8?Q?unterminated") == "=?utf-8?Q?unterminated");
  CHECK(decode_encoded_words("plain =? text ?=") == "plain =? text ?=");
  CHECK(decode_encoded_words("x=?utf-8?Q?y?=z") == "xyz");  // inside an atom, as readers do
  CHECK(decode_encoded_words("") == "");
  // Long runs of word starts stay linear (each word is looked for within one line's length).
  std::string starts;
  for (int i = 0; i < 20000; ++i) starts += "=?x";
  CHECK(decode_encoded_words(starts) == starts);
}

TEST_CASE("mime structure: addresses, groups and obsolete routes") {
  auto a = parse_address_list(
      "A Group: Ed Jones <c@a.test>, joe@where.test, John <jdoe@one.test>;, "
      "Mary Smith <@route.one,@route.two:mary@x.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>, "
      "jdoe (John Doe) , undisclosed-recipients:;, <>, ,, Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>,"
      "john . q . public @ example . com, [1.2.3.4]@x, a@[1.2.3.4]");
  REQUIRE(a.size() == 15);
  CHECK(a[0].kind == Address::Kind::GroupStart);
  CHECK(a[0].mailbox == "A Group");
  CHECK(a[1].name == "Ed Jones");
  CHECK(a[1].mailbox == "c");
  CHECK(a[1].host == "a.test");
  CHECK(a[2].name.empty());
  CHECK(a[2].mailbox == "joe");
  CHECK(a[3].host == "one.test");
  CHECK(a[4].kind == Address::Kind::GroupEnd);
  CHECK(a[5].name == "Mary Smith");
  CHECK(a[5].adl == "@route.one,@route.two");
  CHECK(a[5].mailbox == "mary");
  CHECK(a[6].name == "Giant; \"Big\" Box");
  CHECK(a[7].mailbox == "jdoe");  // the comment is no name
  CHECK(a[7].host.empty());
  CHECK(a[8].kind == Address::Kind::GroupStart);
  CHECK(a[8].mailbox == "undisclosed-recipients");
  CHECK(a[9].kind == Address::Kind::GroupEnd);
  CHECK(a[10].mailbox.empty());  // "<>"
  CHECK(a[10].host.empty());
  CHECK(a[11].name == "Pete");
  CHECK(a[11].mailbox == "pete");
  CHECK(a[11].host == "silly.test");
  CHECK(a[12].mailbox == "john.q.public");
  CHECK(a[12].host == "example.com");
  CHECK(a[13].mailbox == "[1.2.3.4]");
  CHECK(a[14].host == "[1.2.3.4]");
  // A group without ";" is closed at the end.
  auto g = parse_address_list("team: a@b.test");
  REQUIRE(g.size() == 3);
  CHECK(g[2].kind == Address::Kind::GroupEnd);
  CHECK(parse_address_list("").empty());
  std::string routes;
  for (int i = 0; i < 20000; ++i) routes += "<@a,";
  CHECK(parse_address_list(routes).size() == 20000);
  CHECK(parse_address_list(" , ,").empty());
  auto u = parse_address_list("=?utf-8?q?J=C3=B6rg?= <j@x.test>, \"\xC3\xA9\" <\xC3\xA9@x.test>");
  REQUIRE(u.size() == 2);
  CHECK(u[0].name == "=?utf-8?q?J=C3=B6rg?=");  // kept as IMAP sends it
  CHECK(u[1].mailbox == "\xC3\xA9");              // RFC 6532 UTF-8
}

TEST_CASE("mime structure: multipart/digest parts default to message/rfc822") {
  std::string msg = crlf(
      "Content-Type: multipart/digest; boundary=d\n"
      "\n"
      "--d\n"
      "\n"
      "Subject: first\n"
      "\n"
      "one\n"
      "--d\n"
      "Content-Type: text/plain\n"
      "\n"
      "explicit\n"
      "--d--\n");
  Part p = parse(msg);
  REQUIRE(p.children.size() == 2);
  CHECK(p.children[0].type == "message");
  CHECK(p.children[0].subtype == "rfc822");
  CHECK(p.children[0].params.empty());
  REQUIRE(p.children[0].children.size() == 1);
  CHECK(p.children[0].children[0].envelope->subject == "first");
  CHECK(body_of(msg, p.children[0].children[0]) == "one");
  CHECK(p.children[1].type == "text");
}

TEST_CASE("mime structure: a missing close delimiter and a missing boundary") {
  std::string msg = crlf(
      "Content-Type: multipart/mixed; boundary=b\n"
      "\n"
      "--b\n"
      "\n"
      "last part runs to the end\n");
  Part p = parse(msg);
  REQUIRE(p.children.size() == 1);
  CHECK(body_of(msg, p.children[0]) == "last part runs to the end\r\n");
  CHECK(p.children[0].body_lines == 1);
  // No boundary parameter, or a boundary that never comes: a multipart without children.
  for (std::string m : {crlf("Content-Type: multipart/mixed\n\n--b\n\nx\n--b--\n"),
                        crlf("Content-Type: multipart/mixed; boundary=zz\n\n--b\n\nx\n--b--\n"),
                        crlf("Content-Type: multipart/mixed; boundary=\"\"\n\n--\n\nx\n")}) {
    CAPTURE(m);
    Part q = parse(m);
    CHECK(q.is_multipart());
    CHECK(q.children.empty());
    CHECK(body_of(m, q) == m.substr(m.find("\r\n\r\n") + 4));
  }
}

TEST_CASE("mime structure: headers without a body, an empty message, delimiters in a header") {
  Part e = parse("");
  CHECK(e.header_length == 0);
  CHECK(e.body_length == 0);
  CHECK(e.body_lines == 0);
  CHECK(e.type == "text");
  CHECK(e.envelope.has_value());
  std::string h = "Subject: only a header\r\nFrom: a@b";
  Part ph = parse(h);
  CHECK(ph.header_length == h.size());
  CHECK(ph.body_offset == h.size());
  CHECK(ph.body_length == 0);
  CHECK(ph.envelope->from.addresses.at(0).host == "b");
  std::string hb = "Subject: x\r\n\r\n";
  Part phb = parse(hb);
  CHECK(phb.header_length == hb.size());
  CHECK(phb.body_length == 0);
  CHECK(phb.body_lines == 0);
  // Parts whose header a delimiter ends, an empty body, a delimiter right after the header.
  std::string msg = crlf(
      "Content-Type: multipart/mixed; boundary=b\n"
      "\n"
      "--b\n"
      "Content-Type: text/html\n"
      "--b\n"
      "Content-Type: text/x-empty\n"
      "\n"
      "--b\n"
      "Content-Type: message/rfc822\n"
      "\n"
      "Subject: cut\n"
      "\n"
      "--b--\n");
  Part p = parse(msg);
  REQUIRE(p.children.size() == 3);
  CHECK(p.children[0].subtype == "html");
  CHECK(header_of(msg, p.children[0]) == "Content-Type: text/html");
  CHECK(p.children[0].body_length == 0);
  CHECK(header_of(msg, p.children[1]) == "Content-Type: text/x-empty\r\n\r\n");
  CHECK(p.children[1].body_length == 0);
  CHECK(p.children[1].body_lines == 0);
  const Part& m = p.children[2];
  REQUIRE(m.children.size() == 1);
  CHECK(body_of(msg, m) == "Subject: cut\r\n\r\n");  // the empty line stays the header's
  CHECK(header_of(msg, m.children[0]) == "Subject: cut\r\n\r\n");
  CHECK(m.children[0].body_length == 0);
  CHECK(m.body_lines == 2);
  CHECK(m.children[0].envelope->subject == "cut");
  std::string first = "--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--";
  Part pf = parse(first);  // "--b" before the root's header fields is a line without a colon
  REQUIRE(pf.children.size() == 1);
  CHECK(body_of(first, pf.children[0]) == "x");
  // A delimiter right after another: an empty part without header.
  std::string twice = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\nx\r\n--b--";
  Part pt = parse(twice);
  REQUIRE(pt.children.size() == 2);
  CHECK(pt.children[0].header_length + pt.children[0].body_length == 0);
  CHECK(pt.children[0].header_offset == twice.find("--b\r\n\r\n"));
  CHECK(body_of(twice, pt.children[1]) == "x");
}

TEST_CASE("mime structure: duplicate headers, 8-bit, NUL and junk in headers") {
  std::string msg = "Subject: first\r\nSubject: second\r\nContent-Type: text/html\r\nContent-Type: image/gif\r\n"
                    "X-Bin: " + std::string("\x01\x00\xFF", 3) + "\r\nno colon here\r\n  continuation of nothing\r\n"
                    "From: \xC3\xA9l\xC3\xA8ve <e@x.test>\r\nTo:\r\n\r\nbody";
  Part p = parse(msg);
  CHECK(p.envelope->subject == "first");  // the first occurrence
  CHECK(p.subtype == "html");
  CHECK(p.envelope->from.addresses.at(0).name == "\xC3\xA9l\xC3\xA8ve");
  CHECK(p.envelope->to.raw == "");
  CHECK(p.envelope->to.addresses.empty());
  CHECK(body_of(msg, p) == "body");
  std::string nul("Sub\0ject: x\r\n\r\n\0\0\n", 18);
  Part q = parse(nul);
  CHECK(q.body_length == 3);
  CHECK(q.body_lines == 1);
}

TEST_CASE("mime structure: a header block past the limit is cut, offsets stay exact") {
  std::string big = "Subject: " + std::string(100000, 'x') + "\r\nContent-Type: text/html\r\n\r\nbody";
  StructureParser parser;
  parser.feed(big);
  CHECK(parser.limited());
  Part p = parser.finish();
  CHECK(p.header_length == big.size() - 4);
  CHECK(body_of(big, p) == "body");
  CHECK(p.subtype == "plain");  // the field past the limit is not seen
  CHECK(p.envelope->subject->size() == 64 * 1024 - 9);
}

TEST_CASE("mime structure: nesting past the depth limit is kept as text") {
  std::string msg, close;
  for (int d = 0; d < 101; ++d) {
    msg += "Content-Type: multipart/mixed; boundary=b" + std::to_string(d) + "\r\n\r\n--b" + std::to_string(d) + "\r\n";
    close = "\r\n--b" + std::to_string(d) + "--" + close;
  }
  msg += "\r\ninnermost" + close;
  StructureParser parser;
  parser.feed(msg);
  CHECK(parser.limited());
  Part whole = parser.finish();
  CHECK(parse(msg) == whole);
  const Part* p = &whole;
  int containers = 0;
  while (!p->children.empty()) {
    ++containers;
    p = &p->children[0];
  }
  CHECK(containers == 100);
  CHECK(p->is_multipart());  // the 101st: a leaf whose body is text
  CHECK(p->param("boundary") == "b100");
  CHECK(body_of(msg, *p) == "--b100\r\n\r\ninnermost\r\n--b100--");
  // messages count as containers too
  std::string m;
  for (int d = 0; d < 150; ++d) m += "Content-Type: message/rfc822\r\n\r\n";
  m += "body";
  Part pm = parse(m);
  std::size_t depth = 0;
  for (const Part* q = &pm; !q->children.empty(); q = &q->children[0]) ++depth;
  CHECK(depth == 100);
}

TEST_CASE("mime structure: 10,001 parts: the rest is the body of the last part opened") {
  std::string msg = "Content-Type: multipart/mixed; boundary=p\r\n\r\n";
  for (int i = 0; i < 10001; ++i) msg += "--p\r\n\r\n" + std::to_string(i) + "\r\n";
  msg += "--p--\r\n";
  StructureParser parser;
  parser.feed(msg);
  CHECK(parser.limited());
  Part p = parser.finish();
  CHECK(count_parts(p) == 10000);
  REQUIRE(p.children.size() == 9999);
  CHECK(body_of(msg, p.children[9997]) == "9997");
  CHECK(p.children[9998].body_offset + p.children[9998].body_length == msg.size());
  CHECK(body_of(msg, p.children[9998]).substr(0, 13) == "9998\r\n--p\r\n\r\n");
  check_tree(msg, p);
  CHECK(parse(msg) == p);
  CHECK(*decode_structure(encode_structure(p)) == p);
  // Under the limit nothing is cut.
  StructureParser small;
  small.feed("Content-Type: multipart/mixed; boundary=p\r\n\r\n--p\r\n\r\nx\r\n--p--\r\n");
  (void)small.finish();
  CHECK_FALSE(small.limited());
}

// A generated corpus: random trees of multiparts, messages and leaves written as a message,
// with the expected body of every part, in CRLF and in bare LF.
namespace {

struct Expected {
  std::string type, subtype, body;
  std::vector<Expected> children;
};

std::string generate(std::mt19937& rng, int depth, int& serial, Expected& ex) {
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  std::string header;
  int kind = depth >= 4 ? 0 : pick(3);
  if (kind == 1) {  // multipart
    std::string b = "=_b" + std::to_string(serial++);
    const char* subs[] = {"mixed", "alternative", "related"};
    ex.type = "multipart";
    ex.subtype = subs[pick(3)];
    header = "Content-Type: multipart/" + ex.subtype + ";\r\n boundary=\"" + b + "\"\r\n\r\n";
    std::string body = pick(2) ? "preamble --" + b + "x\r\n" : "";
    int n = 1 + pick(3);
    for (int i = 0; i < n; ++i) {
      Expected c;
      std::string text = generate(rng, depth + 1, serial, c);
      body += (i ? "\r\n--" : "--") + b + (pick(2) ? " \r\n" : "\r\n") + text;
      ex.children.push_back(std::move(c));
    }
    body += "\r\n--" + b + "--\r\n" + (pick(2) ? "epilogue\r\n" : "");
    ex.body = body;
    return header + body;
  }
  if (kind == 2) {  // message/rfc822
    ex.type = "message";
    ex.subtype = "rfc822";
    Expected c;
    std::string inner = "Subject: m" + std::to_string(serial++) + "\r\n" + generate(rng, depth + 1, serial, c);
    ex.children.push_back(std::move(c));
    ex.body = inner;
    return "Content-Type: message/rfc822\r\n\r\n" + inner;
  }
  ex.type = "text";
  ex.subtype = "plain";
  std::string body;
  for (int i = pick(4); i > 0; --i) body += (pick(3) ? "text line " : "--not-a-boundary ") + std::to_string(serial++) + "\r\n";
  if (pick(2)) body += "last line without line end";
  ex.body = body;
  return "Content-Type: text/plain\r\n\r\n" + body;
}

std::string bare_lf(std::string s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
  return out;
}

void compare(std::string_view msg, const Part& p, const Expected& ex, bool lf) {
  CHECK(p.type == ex.type);
  CHECK(p.subtype == ex.subtype);
  // A message's own body is its header and body; a generated message starts with "Subject".
  std::string want = lf ? bare_lf(ex.body) : ex.body;
  if (p.envelope && ex.type != "message") {
    CHECK(msg.substr(p.header_offset, p.header_length + p.body_length).substr(0, 8) == "Subject:");
  }
  CHECK(body_of(msg, p) == want);
  std::size_t lines = 0;
  for (char c : want) lines += c == '\n';
  if (!want.empty() && want.back() != '\n') ++lines;
  CHECK(p.body_lines == lines);
  if (ex.type == "message") {
    REQUIRE(p.children.size() == 1);
    compare(msg, p.children[0], ex.children[0], lf);
    return;
  }
  REQUIRE(p.children.size() == ex.children.size());
  for (std::size_t i = 0; i < ex.children.size(); ++i) compare(msg, p.children[i], ex.children[i], lf);
}

}  // namespace

TEST_CASE("mime structure: a generated corpus, whole, byte by byte and in random pieces") {
  auto& rng = cmail::test::test_rng();
  for (int n = 0; n < 40; ++n) {
    int serial = 0;
    Expected ex;
    std::string msg = "Subject: top\r\n" + generate(rng, 0, serial, ex);
    CAPTURE(msg);
    // The generated root is the Content-Type's part: compare its structure below the header.
    Part p = parse(msg);
    Expected root = ex;
    if (ex.type == "message") {
      CHECK(p.is_message());
    }
    compare(msg, p, root, false);
    std::string lf = bare_lf(msg);
    Part q = parse(lf);
    compare(lf, q, root, true);
  }
}

TEST_CASE("mime structure: base64 and quoted-printable decoders, whole and in pieces") {
  auto run = [](auto make, std::string_view in, std::string_view want, bool damaged) {
    auto d = make();
    std::string out;
    d.feed(in, out);
    d.finish(out);
    CHECK(out == want);
    CHECK(d.size() == want.size());
    CHECK(d.damaged() == damaged);
    auto e = make();
    std::string split;
    for (char c : in) e.feed(std::string_view(&c, 1), split);
    e.finish(split);
    CHECK(split == want);
  };
  auto b64 = [] { return Base64Decoder(); };
  run(b64, "SGVsbG8sIHdvcmxkIQ==", "Hello, world!", false);
  run(b64, "SGVs\r\nbG8s\r\n IHdv cmxk", "Hello, world", false);
  run(b64, "SGVsbG8", "Hello", false);  // an unpadded end gives what its bits hold
  run(b64, "SGVsbG8=SGVsbG8=", "HelloHello", false);
  run(b64, "SG!Vs", "Hel", true);  // a stray character is ignored
  run(b64, "S", "", true);
  run(b64, "", "", false);
  auto qp = [] { return QuotedPrintableDecoder(); };
  run(qp, "caf=C3=a9 =\r\nau lait  \r\nnext\t\nline", "caf\xC3\xA9 au lait\r\nnext\nline", false);
  run(qp, "soft =  \r\nbreak=\nend=", "soft breakend", false);
  run(qp, "a=XYb=4", "a=XYb=4", true);  // malformed escapes kept literally
  run(qp, "bare\rcr ", "bare\rcr", false);
  run(qp, "= x", "= x", true);
  run(qp, "", "", false);
  TransferDecoder t("BASE64");
  std::string out;
  t.feed("QUJD", out);
  t.finish(out);
  CHECK(out == "ABC");
  CHECK(t.size() == 3);
  CHECK(t.known());
  TransferDecoder x("x-uuencode");
  CHECK_FALSE(x.known());
  TransferDecoder seven("7bit");
  std::string id;
  seven.feed("abc", id);
  CHECK(id == "abc");
  CHECK(seven.size() == 3);
}

TEST_CASE("mime structure: the stored form round trips and rejects anything else") {
  std::string msg = crlf(
      "From: A <a@b.test>\nTo: g: x@y.test;\nCc: <@r:c@d.test>\nSubject: s\n"
      "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Disposition: attachment; filename=f\n"
      "Content-Language: de\nContent-ID: <i>\n\nx\n--b\nContent-Type: message/rfc822\n\nSubject: in\n\ny\n--b--\n");
  Part p = parse(msg);
  std::string stored = encode_structure(p);
  CHECK(stored.substr(0, 4) == std::string("CMS\x01"));
  auto back = decode_structure(stored);
  REQUIRE(back.has_value());
  CHECK(*back == p);
  for (std::size_t n = 0; n < stored.size(); ++n) CHECK_FALSE(decode_structure(stored.substr(0, n)).has_value());
  CHECK_FALSE(decode_structure(stored + "x").has_value());
  std::string v2 = stored;
  v2[3] = 2;
  CHECK_FALSE(decode_structure(v2).has_value());
  CHECK_FALSE(decode_structure("garbage").has_value());
  CHECK_FALSE(decode_structure(std::string("CMS\x01\x63", 5)).has_value());  // an unknown tag
  CHECK_FALSE(decode_structure(std::string("CMS\x01\x06\xff\xff\xff\xff\x0f", 9)).has_value());  // a long string
  CHECK_FALSE(decode_structure(std::string("CMS\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00", 15)).has_value());
  std::string deep = "CMS\x01";
  for (int i = 0; i < 300; ++i) deep += '\x11';
  CHECK_FALSE(decode_structure(deep).has_value());
  CHECK(decode_structure(std::string("CMS\x01\x00", 5)) == Part{});
}
