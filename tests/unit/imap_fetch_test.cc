#include <cmail/imap/fetch.h>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace cmail;
using namespace cmail::imap;

namespace {

std::string crlf(std::string_view s) {  // "\n" -> "\r\n", so that the messages read easily
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

std::vector<Value> values(std::string_view wire) {
  auto r = parse_values(wire);
  REQUIRE(std::holds_alternative<std::vector<Value>>(r));
  return std::get<std::vector<Value>>(r);
}

FetchRequest request(std::string_view wire) {
  auto r = parse_fetch(values(wire));
  if (auto* bad = std::get_if<std::string>(&r)) FAIL("BAD " << *bad << " for " << wire);
  return std::get<FetchRequest>(r);
}

std::string bad(std::string_view wire) {
  auto r = parse_fetch(values(wire));
  REQUIRE_MESSAGE(std::holds_alternative<std::string>(r), wire);
  return std::get<std::string>(r);
}

FetchItem att(std::string_view text) {
  auto it = parse_fetch_att(text);
  REQUIRE_MESSAGE(it.has_value(), text);
  return *it;
}

// One data item of a message, through the whole path: parse the item, encode it.
std::string item(std::string_view msg, const mail::Part& root, std::string_view text, bool utf8 = false) {
  MessageData m;
  m.structure = &root;
  m.octets = msg;
  m.uid = 42;
  m.flags = {"\\Seen", "$Work"};
  m.internal_date = 1764747300;  // 2025-12-03 07:35:00 UTC
  m.modseq = 9;
  auto r = encode_message_item(att(text), m, utf8);
  REQUIRE_MESSAGE(std::holds_alternative<std::string>(r), text);
  return std::get<std::string>(r);
}

std::string section(std::string_view msg, std::string_view text) {
  mail::Part root = mail::parse_structure(msg);
  return item(msg, root, text);
}

using K = FetchItem::Kind;

const std::string kMixed = crlf(
    "From: Ann <ann@a.example>\n"
    "Subject: parts\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "preamble\n"
    "--outer\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "first part\n"
    "--outer\n"
    "Content-Type: application/octet-stream; name=\"a.bin\"\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=\"a.bin\"\n"
    "Content-Language: en, de\n"
    "Content-Location: http://a.example/a.bin\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-ID: <id1@a.example>\n"
    "Content-Description: some bytes\n"
    "\n"
    "AGFiAA==\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=C3=A9 =\n"
    "ok\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: Bob <bob@b.example>\n"
    "Subject: inner\n"
    "Content-Type: multipart/alternative; boundary=alt\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain\n"
    "\n"
    "plain\n"
    "--alt\n"
    "Content-Type: text/html\n"
    "\n"
    "<b>html</b>\n"
    "--alt--\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: x-uuencode\n"
    "\n"
    "begin 644 x\n"
    "--outer--\n"
    "epilogue\n");

}  // namespace

TEST_CASE("imap fetch: the simple items, in any case") {
  struct Case {
    const char* text;
    K kind;
  };
  for (auto [text, kind] : {Case{"UID", K::Uid}, Case{"flags", K::Flags}, Case{"InternalDate", K::InternalDate},
                            Case{"RFC822.SIZE", K::Rfc822Size}, Case{"ENVELOPE", K::Envelope}, Case{"body", K::Body},
                            Case{"BODYSTRUCTURE", K::BodyStructure}, Case{"RFC822", K::Rfc822},
                            Case{"rfc822.header", K::Rfc822Header}, Case{"RFC822.TEXT", K::Rfc822Text},
                            Case{"MODSEQ", K::ModSeq}}) {
    FetchItem it = att(text);
    CHECK(it.kind == kind);
    CHECK_FALSE(it.peek);
    CHECK_FALSE(it.partial);
  }
  CHECK_FALSE(parse_fetch_att("RFC822.SIZES"));
  CHECK_FALSE(parse_fetch_att("BODYSTRUCTURE[]"));
  CHECK_FALSE(parse_fetch_att("UIDS"));
  CHECK_FALSE(parse_fetch_att(""));
}

TEST_CASE("imap fetch: macros expand as RFC 9051 6.4.5 says") {
  auto kinds = [](const FetchRequest& r) {
    std::vector<K> out;
    for (const FetchItem& i : r.items) out.push_back(i.kind);
    return out;
  };
  CHECK(kinds(request("FAST")) == std::vector<K>{K::Flags, K::InternalDate, K::Rfc822Size});
  CHECK(kinds(request("all")) == std::vector<K>{K::Flags, K::InternalDate, K::Rfc822Size, K::Envelope});
  CHECK(kinds(request("Full")) == std::vector<K>{K::Flags, K::InternalDate, K::Rfc822Size, K::Envelope, K::Body});
  // A macro is not a fetch-att: not inside a list.
  CHECK(bad("(ALL)").find("ALL") != std::string::npos);
  CHECK(kinds(request("(UID FLAGS)")) == std::vector<K>{K::Uid, K::Flags});
}

TEST_CASE("imap fetch: sections, partials and PEEK") {
  FetchItem it = att("BODY.PEEK[1.2.HEADER.FIELDS (From \"X-Odd\" subject)]<10.200>");
  CHECK(it.kind == K::BodySection);
  CHECK(it.peek);
  CHECK(it.section.part == std::vector<std::uint32_t>{1, 2});
  CHECK(it.section.text == Section::Text::HeaderFields);
  CHECK(it.section.fields == std::vector<std::string>{"From", "X-Odd", "subject"});
  REQUIRE(it.partial);
  CHECK(*it.partial == Partial{10, 200});
  CHECK(response_name(it) == "BODY[1.2.HEADER.FIELDS (FROM X-ODD SUBJECT)]<10>");

  it = att("body[]");
  CHECK(it.section == Section{});
  CHECK_FALSE(it.peek);
  CHECK(response_name(it) == "BODY[]");
  CHECK(att("BODY[HEADER]").section.text == Section::Text::Header);
  CHECK(att("BODY[text]").section.text == Section::Text::Text);
  CHECK(att("BODY[3.MIME]").section == Section{{3}, Section::Text::Mime, {}});
  CHECK(att("BODY[HEADER.FIELDS.NOT (A)]").section == Section{{}, Section::Text::HeaderFieldsNot, {"A"}});
  CHECK(response_name(att("BODY.PEEK[2.TEXT]<0.5>")) == "BODY[2.TEXT]<0>");
  CHECK(response_name(att("BODY[4.HEADER.FIELDS.NOT (a b)]")) == "BODY[4.HEADER.FIELDS.NOT (A B)]");
  CHECK(response_name(att("BODY[HEADER.FIELDS (\"x]y\" \"nil\" \"a b\")]")) == "BODY[HEADER.FIELDS (\"X]Y\" \"NIL\" \"A B\")]");

  it = att("BINARY.PEEK[1.2]<0.7>");
  CHECK(it.kind == K::Binary);
  CHECK(it.peek);
  CHECK(it.section.part == std::vector<std::uint32_t>{1, 2});
  CHECK(response_name(it) == "BINARY[1.2]<0>");
  CHECK(att("BINARY[]").section.part.empty());
  it = att("binary.size[3]");
  CHECK(it.kind == K::BinarySize);
  CHECK(response_name(it) == "BINARY.SIZE[3]");
  CHECK(response_name(att("RFC822.HEADER")) == "RFC822.HEADER");

  for (const char* malformed : {
           "BODY[", "BODY[]]", "BODY[0]", "BODY[1.0]", "BODY[1.]", "BODY[.1]", "BODY[MIME]", "BODY[HEADER.FIELDS]",
           "BODY[HEADER.FIELDS ()]", "BODY[HEADER.FIELDS (A]", "BODY[HEADER.FIELDS A]", "BODY[HEADER (A)]",
           "BODY[TEXT.MIME]", "BODY[1.HEAD]", "BODY[]<0>", "BODY[]<0.0>", "BODY[]<.5>", "BODY[]<1.5", "BODY[]<a.5>",
           "BODY[]x", "BODY.PEEK", "BINARY[TEXT]", "BINARY[1.MIME]", "BINARY.SIZE[1]<0.5>", "BINARY.PEEK.SIZE[1]",
           "BODYX[]", "BODY[]<4294967296.1>", "BODY[1.4294967296]",
       })
    CHECK_MESSAGE(!parse_fetch_att(malformed), malformed);
}

TEST_CASE("imap fetch: requests, CONDSTORE modifiers and BAD texts") {
  FetchRequest r = request("(UID BODY.PEEK[HEADER.FIELDS (A B)]<0.100> RFC822.SIZE)");
  REQUIRE(r.items.size() == 3);
  CHECK(r.items[1].section.fields == std::vector<std::string>{"A", "B"});
  CHECK_FALSE(r.changed_since);

  r = request("(FLAGS) (CHANGEDSINCE 12345)");
  REQUIRE(r.changed_since);
  CHECK(*r.changed_since == 12345);
  REQUIRE(r.items.size() == 2);  // RFC 7162 3.1.4.1: MODSEQ implied
  CHECK(r.items[1].kind == K::ModSeq);
  r = request("(FLAGS MODSEQ) (changedsince 7 vanished)");
  CHECK(r.items.size() == 2);
  CHECK(r.vanished);
  r = request("FLAGS (VANISHED) (CHANGEDSINCE 3)");
  CHECK(r.vanished);
  CHECK(*r.changed_since == 3);

  CHECK_FALSE(bad("").empty());
  CHECK_FALSE(bad("()").empty());
  CHECK(bad("(UID BOGUS)").find("BOGUS") != std::string::npos);
  CHECK(bad("BOGUS").find("BOGUS") != std::string::npos);
  CHECK_FALSE(bad("\"UID\"").empty());
  CHECK_FALSE(bad("(\"UID\")").empty());
  CHECK_FALSE(bad("(UID (FLAGS))").empty());
  CHECK_FALSE(bad("12").empty());
  CHECK_FALSE(bad("UID FLAGS").empty());
  CHECK(bad("FLAGS (VANISHED)") == "VANISHED without CHANGEDSINCE");
  CHECK_FALSE(bad("FLAGS (CHANGEDSINCE)").empty());
  CHECK_FALSE(bad("FLAGS (CHANGEDSINCE 0)").empty());
  CHECK_FALSE(bad("FLAGS (CHANGEDSINCE x)").empty());
  CHECK_FALSE(bad("FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)").empty());
  CHECK_FALSE(bad("FLAGS (CHANGEDSINCE 9223372036854775808)").empty());
  CHECK_FALSE(bad("FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)").empty());
  CHECK_FALSE(bad("FLAGS (UNKNOWNMOD 1)").empty());
  CHECK_FALSE(bad("FLAGS ()").empty());
  CHECK_FALSE(bad("(BODY[1.0])").empty());
}

TEST_CASE("imap fetch: sets_seen") {
  CHECK(sets_seen(request("BODY[]")));
  CHECK(sets_seen(request("(UID BODY[1.MIME])")));
  CHECK(sets_seen(request("BINARY[1]")));
  CHECK(sets_seen(request("RFC822")));
  CHECK(sets_seen(request("RFC822.TEXT")));
  CHECK_FALSE(sets_seen(request("(BODY.PEEK[] BINARY.PEEK[1] BINARY.SIZE[1])")));
  CHECK_FALSE(sets_seen(request("(RFC822.HEADER RFC822.SIZE BODY BODYSTRUCTURE ENVELOPE)")));
  CHECK_FALSE(sets_seen(request("FULL")));
}

TEST_CASE("imap fetch: ENVELOPE of a plain message; Sender and Reply-To default to From") {
  std::string msg = crlf(
      "Date: Wed, 02 Dec 2026 10:00:00 +0100\n"
      "From: \"Ann Example\" <ann@a.example>\n"
      "To: bob@b.example, Carl <carl@c.example>\n"
      "Cc: <dan@d.example>\n"
      "Subject: =?utf-8?q?caf=C3=A9?= hello\n"
      "Message-ID: <m1@a.example>\n"
      "In-Reply-To: <m0@b.example>\n"
      "\n"
      "hi\n");
  mail::Part root = mail::parse_structure(msg);
  REQUIRE(root.envelope);
  CHECK(encode_envelope(*root.envelope, false) ==
        "(\"Wed, 02 Dec 2026 10:00:00 +0100\" \"=?utf-8?q?caf=C3=A9?= hello\" "
        "((\"Ann Example\" NIL \"ann\" \"a.example\")) "
        "((\"Ann Example\" NIL \"ann\" \"a.example\")) "
        "((\"Ann Example\" NIL \"ann\" \"a.example\")) "
        "((NIL NIL \"bob\" \"b.example\")(\"Carl\" NIL \"carl\" \"c.example\")) "
        "((NIL NIL \"dan\" \"d.example\")) NIL \"<m0@b.example>\" \"<m1@a.example>\")");
}

TEST_CASE("imap fetch: ENVELOPE with Sender, Reply-To, groups and a missing domain") {
  std::string msg = crlf(
      "From: ann@a.example\n"
      "Sender: sec@a.example\n"
      "Reply-To: list@l.example\n"
      "To: friends: bob@b.example, carl@c.example;, eve@e.example\n"
      "Bcc: undisclosed-recipients:;\n"
      "Cc: local\n"
      "\n");
  mail::Part root = mail::parse_structure(msg);
  CHECK(encode_envelope(*root.envelope, false) ==
        "(NIL NIL ((NIL NIL \"ann\" \"a.example\")) ((NIL NIL \"sec\" \"a.example\")) "
        "((NIL NIL \"list\" \"l.example\")) "
        "((NIL NIL \"friends\" NIL)(NIL NIL \"bob\" \"b.example\")(NIL NIL \"carl\" \"c.example\")(NIL NIL NIL NIL)"
        "(NIL NIL \"eve\" \"e.example\")) "
        "((NIL NIL \"local\" \"MISSING_DOMAIN\")) "
        "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL)");
}

TEST_CASE("imap fetch: ENVELOPE of a message without fields is all NIL; 8-bit text is a literal unless UTF-8") {
  CHECK(encode_envelope(mail::Envelope{}, false) == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
  mail::Envelope e;
  e.subject = "caf\xC3\xA9";
  CHECK(encode_envelope(e, false) == "(NIL {5}\r\ncaf\xC3\xA9 NIL NIL NIL NIL NIL NIL NIL NIL)");
  CHECK(encode_envelope(e, true) == "(NIL \"caf\xC3\xA9\" NIL NIL NIL NIL NIL NIL NIL NIL)");
  e.subject = "say \"hi\"";
  CHECK(encode_envelope(e, false) == "(NIL \"say \\\"hi\\\"\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

TEST_CASE("imap fetch: BODY and BODYSTRUCTURE of a plain message") {
  std::string msg = crlf("Subject: x\n\nline one\nline two\n");
  mail::Part root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, false, false) == "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2)");
  CHECK(encode_body_structure(root, true, false) ==
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL)");
  // A Content-Type without charset still says us-ascii (RFC 2045 5.2), after the other parameters.
  msg = crlf("Content-Type: text/plain; format=flowed\n\nx\n");
  root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, false, false) ==
        "(\"text\" \"plain\" (\"format\" \"flowed\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
  // Not text: no lines, no charset.
  msg = crlf("Content-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n");
  root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, true, false) == "(\"image\" \"png\" NIL NIL NIL \"base64\" 6 NIL NIL NIL NIL)");
}

TEST_CASE("imap fetch: BODYSTRUCTURE of multipart/mixed with alternative inside message/rfc822") {
  mail::Part root = mail::parse_structure(kMixed);
  std::string inner_env = "(NIL \"inner\" ((\"Bob\" NIL \"bob\" \"b.example\")) ((\"Bob\" NIL \"bob\" \"b.example\")) "
                          "((\"Bob\" NIL \"bob\" \"b.example\")) NIL NIL NIL NIL NIL)";
  CHECK(encode_body_structure(root, true, false) ==
        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)"
        "(\"application\" \"octet-stream\" (\"name\" \"a.bin\") \"<id1@a.example>\" \"some bytes\" \"base64\" 8 "
        "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"a.bin\")) (\"en\" \"de\") "
        "\"http://a.example/a.bin\")"
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"quoted-printable\" 15 2 NIL NIL NIL NIL)"
        "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 192 " + inner_env + " "
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)"
        "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL) "
        "\"alternative\" (\"boundary\" \"alt\") NIL NIL NIL) 13 NIL NIL NIL NIL)"
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"x-uuencode\" 11 1 NIL NIL NIL NIL) "
        "\"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)");
  CHECK(encode_body_structure(root, false, false) ==
        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1)"
        "(\"application\" \"octet-stream\" (\"name\" \"a.bin\") \"<id1@a.example>\" \"some bytes\" \"base64\" 8)"
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"quoted-printable\" 15 2)"
        "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 192 " + inner_env + " "
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1)"
        "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1) \"alternative\") 13)"
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"x-uuencode\" 11 1) \"mixed\")");
}

TEST_CASE("imap fetch: BODYSTRUCTURE with RFC 2231 parameters, a missing boundary, a digest") {
  std::string msg = crlf(
      "Content-Type: application/pdf; name*0=\"long \"; name*1=\"name.pdf\"\n"
      "Content-Disposition: attachment; filename*=utf-8''na%C3%AFve.pdf\n"
      "\n"
      "x\n");
  mail::Part root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, true, false) ==
        "(\"application\" \"pdf\" (\"name\" \"long name.pdf\") NIL NIL \"7bit\" 3 NIL "
        "(\"attachment\" (\"filename\" {10}\r\nna\xC3\xAFve.pdf)) NIL NIL)");
  CHECK(encode_body_structure(root, true, true) ==
        "(\"application\" \"pdf\" (\"name\" \"long name.pdf\") NIL NIL \"7bit\" 3 NIL "
        "(\"attachment\" (\"filename\" \"na\xC3\xAFve.pdf\")) NIL NIL)");

  // No boundary: a multipart without parts is written as one part.
  msg = crlf("Content-Type: multipart/mixed\n\nbody\n");
  root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, false, false) == "(\"multipart\" \"mixed\" NIL NIL NIL \"7bit\" 6)");

  // multipart/digest: the parts default to message/rfc822.
  msg = crlf(
      "Content-Type: multipart/digest; boundary=d\n"
      "\n"
      "--d\n"
      "\n"
      "Subject: one\n"
      "\n"
      "1\n"
      "--d--\n");
  root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, false, false) ==
        "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 17 (NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) "
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 1) 3) \"digest\")");
}

TEST_CASE("imap fetch: find_part and locate_section over nested parts") {
  mail::Part root = mail::parse_structure(kMixed);
  auto body = [&](std::vector<std::uint32_t> part, Section::Text text = Section::Text::None) {
    auto r = locate_section(root, Section{std::move(part), text, {}});
    if (!r) return std::string("<none>");
    return kMixed.substr(r->offset, r->length);
  };
  CHECK(body({}) == kMixed);
  CHECK(body({1}) == "first part");
  CHECK(body({1}, Section::Text::Mime) == "Content-Type: text/plain; charset=utf-8\r\n\r\n");
  CHECK(body({2}) == "AGFiAA==");
  CHECK(body({4}, Section::Text::Header) ==
        "From: Bob <bob@b.example>\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n");
  CHECK(body({4, 1}) == "plain");
  CHECK(body({4, 2}) == "<b>html</b>");
  CHECK(body({4, 2}, Section::Text::Mime) == "Content-Type: text/html\r\n\r\n");
  CHECK(body({4}, Section::Text::Text).substr(0, 7) == "--alt\r\n");
  CHECK(body({4}).substr(0, 6) == "From: ");
  CHECK(body({}, Section::Text::Text).substr(0, 10) == "preamble\r\n");
  CHECK(body({}, Section::Text::Header).substr(0, 5) == "From:");
  // Parts that do not exist; HEADER and TEXT after a part that is not a message.
  CHECK(body({6}) == "<none>");
  CHECK(body({1, 1}) == "<none>");
  CHECK(body({4, 3}) == "<none>");
  CHECK(body({4, 1, 1}) == "<none>");
  CHECK(body({1}, Section::Text::Header) == "<none>");
  CHECK(body({1}, Section::Text::Text) == "<none>");
  CHECK(find_part(root, {}) == &root);
  CHECK(find_part(root, {4, 1}) == &root.children[3].children[0].children[0]);

  // A message that is not multipart has a part 1, its body; 1.MIME is its header.
  std::string plain = crlf("Subject: x\n\nbody\n");
  mail::Part p = mail::parse_structure(plain);
  CHECK(section(plain, "BODY[1]") == "BODY[1] {6}\r\nbody\r\n");
  CHECK(section(plain, "BODY[1.MIME]") == "BODY[1.MIME] {14}\r\nSubject: x\r\n\r\n");
  CHECK(section(plain, "BODY[2]") == "BODY[2] {0}\r\n");
  CHECK(find_part(p, {1, 1}) == nullptr);

  // A message/rfc822 that holds a single part: 1.1 is the body of the encapsulated message.
  std::string nested = crlf("Content-Type: message/rfc822\n\nSubject: in\n\ninner\n");
  CHECK(section(nested, "BODY[1]") == "BODY[1] {22}\r\nSubject: in\r\n\r\ninner\r\n");
  CHECK(section(nested, "BODY[1.1]") == "BODY[1.1] {7}\r\ninner\r\n");
  CHECK(section(nested, "BODY[1.HEADER]") == "BODY[1.HEADER] {15}\r\nSubject: in\r\n\r\n");
  CHECK(section(nested, "BODY[1.TEXT]") == "BODY[1.TEXT] {7}\r\ninner\r\n");
  CHECK(section(nested, "BODY[1.2]") == "BODY[1.2] {0}\r\n");
}

TEST_CASE("imap fetch: filter_header keeps continuation lines, ignores case, ends with the empty line") {
  std::string header = crlf(
      "From: a@a.example\n"
      "Subject: one\n"
      "  two\n"
      "X-Other: y\n"
      "subject : again\n"
      "\n");
  CHECK(filter_header(header, {"SUBJECT"}, false) == crlf("Subject: one\n  two\nsubject : again\n\n"));
  CHECK(filter_header(header, {"subject", "x-other"}, true) == crlf("From: a@a.example\n\n"));
  CHECK(filter_header(header, {"Nope"}, false) == "\r\n");
  CHECK(filter_header("A: 1\nB: 2\n\n", {"b"}, false) == "B: 2\n\n");  // bare LF as stored
  CHECK(filter_header("A: 1\r\nB: 2", {"B"}, false) == "B: 2\r\n");   // no empty line: CRLF added
  CHECK(filter_header("", {"B"}, false) == "\r\n");
  CHECK(filter_header("B: 1\r", {"B"}, false) == "B: 1\r\r\n");  // a lone CR is no line end
  CHECK(filter_header("B: 1\n\rC: 2\n", {"B", "C"}, false) == "B: 1\n\r\n");  // "\rC" is no name asked
  CHECK(section(kMixed, "BODY.PEEK[HEADER.FIELDS (subject FROM)]") ==
        "BODY[HEADER.FIELDS (SUBJECT FROM)] {45}\r\nFrom: Ann <ann@a.example>\r\nSubject: parts\r\n\r\n");
  CHECK(section(kMixed, "BODY[4.HEADER.FIELDS.NOT (From Content-Type)]") ==
        "BODY[4.HEADER.FIELDS.NOT (FROM CONTENT-TYPE)] {18}\r\nSubject: inner\r\n\r\n");
  CHECK(section(kMixed, "BODY[1.HEADER.FIELDS (From)]") == "BODY[1.HEADER.FIELDS (FROM)] {0}\r\n");
}

TEST_CASE("imap fetch: partials at the edges") {
  CHECK(apply_partial("abcdef", 0, 3) == "abc");
  CHECK(apply_partial("abcdef", 3, 3) == "def");
  CHECK(apply_partial("abcdef", 4, 100) == "ef");
  CHECK(apply_partial("abcdef", 5, 1) == "f");
  CHECK(apply_partial("abcdef", 6, 1) == "");
  CHECK(apply_partial("abcdef", 4294967295u, 1) == "");
  CHECK(apply_partial("", 0, 1) == "");
  CHECK(section(kMixed, "BODY[1]<0.5>") == "BODY[1]<0> {5}\r\nfirst");
  CHECK(section(kMixed, "BODY[1]<6.100>") == "BODY[1]<6> {4}\r\npart");
  CHECK(section(kMixed, "BODY[1]<10.1>") == "BODY[1]<10> {0}\r\n");
  CHECK(section(kMixed, "BODY[HEADER.FIELDS (Subject)]<9.100>") == "BODY[HEADER.FIELDS (SUBJECT)]<9> {9}\r\nparts\r\n\r\n");
  CHECK(section(kMixed, "BINARY[2]<1.2>") == "BINARY[2]<1> {2}\r\nab");
}

TEST_CASE("imap fetch: BINARY of base64 and quoted-printable parts, literal8 for NUL, UNKNOWN-CTE") {
  mail::Part root = mail::parse_structure(kMixed);
  auto bin = binary_content(root, kMixed, {2});
  REQUIRE(std::holds_alternative<std::string>(bin));
  CHECK(std::get<std::string>(bin) == std::string("\0ab\0", 4));
  CHECK(item(kMixed, root, "BINARY[2]") == std::string("BINARY[2] ~{4}\r\n\0ab\0", 20));
  CHECK(item(kMixed, root, "BINARY.SIZE[2]") == "BINARY.SIZE[2] 4");
  CHECK(item(kMixed, root, "BINARY.PEEK[3]") == "BINARY[3] {8}\r\ncaf\xC3\xA9 ok");
  CHECK(item(kMixed, root, "BINARY.SIZE[3]") == "BINARY.SIZE[3] 8");
  CHECK(item(kMixed, root, "BINARY[1]") == "BINARY[1] {10}\r\nfirst part");
  CHECK(item(kMixed, root, "BINARY[4.2]") == "BINARY[4.2] {11}\r\n<b>html</b>");
  CHECK(item(kMixed, root, "BINARY[9]") == "BINARY[9] {0}\r\n");
  CHECK(item(kMixed, root, "BINARY.SIZE[9]") == "BINARY.SIZE[9] 0");
  CHECK(std::get<std::string>(binary_content(root, kMixed, {})) == kMixed);

  MessageData m;
  m.structure = &root;
  m.octets = kMixed;
  CHECK(std::holds_alternative<UnknownCte>(binary_content(root, kMixed, {5})));
  CHECK(std::holds_alternative<UnknownCte>(encode_message_item(att("BINARY[5]"), m, false)));
  CHECK(std::holds_alternative<UnknownCte>(encode_message_item(att("BINARY.SIZE[5]"), m, false)));
  // BODY[5] still sends the octets as stored.
  CHECK(item(kMixed, root, "BODY[5]") == "BODY[5] {11}\r\nbegin 644 x");
}

TEST_CASE("imap fetch: the other items of a message") {
  mail::Part root = mail::parse_structure(kMixed);
  CHECK(item(kMixed, root, "UID") == "UID 42");
  CHECK(item(kMixed, root, "FLAGS") == "FLAGS (\\Seen $Work)");
  CHECK(item(kMixed, root, "INTERNALDATE") == "INTERNALDATE \"03-Dec-2025 07:35:00 +0000\"");
  CHECK(item(kMixed, root, "RFC822.SIZE") == "RFC822.SIZE " + std::to_string(kMixed.size()));
  CHECK(item(kMixed, root, "MODSEQ") == "MODSEQ (9)");
  CHECK(item(kMixed, root, "RFC822") == "RFC822 {" + std::to_string(kMixed.size()) + "}\r\n" + kMixed);
  CHECK(item(kMixed, root, "BODY[]") == "BODY[] {" + std::to_string(kMixed.size()) + "}\r\n" + kMixed);
  std::string header = kMixed.substr(0, root.header_length);
  CHECK(item(kMixed, root, "RFC822.HEADER") == "RFC822.HEADER {" + std::to_string(header.size()) + "}\r\n" + header);
  CHECK(item(kMixed, root, "BODY.PEEK[HEADER]") == "BODY[HEADER] {" + std::to_string(header.size()) + "}\r\n" + header);
  std::string text = kMixed.substr(root.body_offset);
  CHECK(item(kMixed, root, "RFC822.TEXT") == "RFC822.TEXT {" + std::to_string(text.size()) + "}\r\n" + text);
  CHECK(item(kMixed, root, "ENVELOPE") == "ENVELOPE " + encode_envelope(*root.envelope, false));
  CHECK(item(kMixed, root, "BODY") == "BODY " + encode_body_structure(root, false, false));
  CHECK(item(kMixed, root, "BODYSTRUCTURE") == "BODYSTRUCTURE " + encode_body_structure(root, true, false));
  CHECK(format_internal_date(0) == "\"01-Jan-1970 00:00:00 +0000\"");
  CHECK(format_internal_date(951782400) == "\"29-Feb-2000 00:00:00 +0000\"");
  CHECK(format_internal_date(-86400) == "\"31-Dec-1969 00:00:00 +0000\"");
  CHECK(format_internal_date(INT64_MAX) == "\"01-Jan-1970 00:00:00 +0000\"");  // out of range: the epoch

  MessageData empty;
  empty.structure = &root;
  CHECK(std::get<std::string>(encode_message_item(att("FLAGS"), empty, false)) == "FLAGS ()");
}

TEST_CASE("imap fetch: bare LF messages are served as stored") {
  std::string msg = "From: a@a.example\nSubject: lf\n\nline1\nline2";
  mail::Part root = mail::parse_structure(msg);
  CHECK(item(msg, root, "BODY[]") == "BODY[] {42}\r\n" + msg);
  CHECK(item(msg, root, "BODY[TEXT]") == "BODY[TEXT] {11}\r\nline1\nline2");
  CHECK(item(msg, root, "BODY[HEADER.FIELDS (SUBJECT)]") == "BODY[HEADER.FIELDS (SUBJECT)] {13}\r\nSubject: lf\n\n");
  CHECK(item(msg, root, "RFC822.SIZE") == "RFC822.SIZE 42");
  CHECK(encode_body_structure(root, false, false) == "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 2)");
}

TEST_CASE("imap fetch: message/global is an encapsulated message like message/rfc822 (RFC 6532)") {
  std::string msg = crlf("Content-Type: message/global\n\nSubject: caf\xC3\xA9\n\nx\n");
  mail::Part root = mail::parse_structure(msg);
  CHECK(encode_body_structure(root, false, true) ==
        "(\"message\" \"global\" NIL NIL NIL \"7bit\" 21 (NIL \"caf\xC3\xA9\" NIL NIL NIL NIL NIL NIL NIL NIL) "
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1) 3)");
  CHECK(section(msg, "BODY[1.HEADER]") == "BODY[1.HEADER] {18}\r\nSubject: caf\xC3\xA9\r\n\r\n");
  CHECK(section(msg, "BODY[1.1]") == "BODY[1.1] {3}\r\nx\r\n");
}

TEST_CASE("imap fetch: the ranges a request reads are all the encoders need (content_ranges, OctetsView)") {
  mail::Part root = mail::parse_structure(kMixed);
  const std::vector<std::string> texts = {
      "BODY[]", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY[HEADER]", "BODY[TEXT]", "BODY[1]",
      "BODY[1]<6.100>", "BODY[1]<10.1>", "BODY[2.MIME]", "BODY[4]", "BODY[4.HEADER]", "BODY[4.TEXT]",
      "BODY[4.2]<3.4>", "BODY[HEADER.FIELDS (Subject)]<9.100>", "BODY[4.HEADER.FIELDS.NOT (From)]",
      "BINARY[2]", "BINARY.SIZE[3]", "BINARY[4.2]<1.2>", "BINARY[]", "BODY[9]", "BODY[1.TEXT]", "BODY[]<5.10>"};
  for (const std::string& text : texts) {
    CAPTURE(text);
    const std::vector<FetchItem> items{att(text)};
    const std::vector<OctetRange> ranges = content_ranges(root, items);
    std::vector<OctetPiece> pieces;
    std::uint64_t read = 0;
    for (const OctetRange& r : ranges) {
      pieces.push_back({r.offset, kMixed.substr(static_cast<std::size_t>(r.offset), static_cast<std::size_t>(r.length))});
      read += r.length;
    }
    // Only a header, a part or a window is read for the items that name one.
    if (text.find("[]") == std::string::npos && text != "RFC822") CHECK(read < kMixed.size());
    MessageData whole, parts;
    whole.structure = parts.structure = &root;
    whole.octets = kMixed;
    parts.octets = OctetsView(kMixed.size(), pieces);
    CHECK(encode_message_item(items[0], parts, false) == encode_message_item(items[0], whole, false));
  }
  // Several items: sorted, overlapping and adjacent ranges merged.
  const auto merged = content_ranges(root, {att("BODY[1]"), att("BODY[HEADER]"), att("BODY[]<0.5>"), att("BODY[1]<2.3>")});
  REQUIRE(merged.size() == 2);
  CHECK(merged[0] == OctetRange{0, root.header_length});
  CHECK(merged[1] == *locate_section(root, Section{{1}, Section::Text::None, {}}));
  CHECK(content_ranges(root, {att("UID"), att("ENVELOPE"), att("BODY[7]")}).empty());
  // A view slices within its pieces only; nothing outside them or past the end.
  std::vector<OctetPiece> two{{2, "cd"}, {10, "klm"}};
  OctetsView v(20, two);
  CHECK(v.size() == 20);
  CHECK(v.slice({10, 2}) == "kl");
  CHECK(v.slice({11, 9}) == "lm");
  CHECK(v.slice({0, 2}).empty());
  CHECK(v.slice({5, 1}).empty());
  CHECK(OctetsView("abc").slice({1, 10}) == "bc");
  CHECK(OctetsView("abc").slice({3, 1}).empty());
}
