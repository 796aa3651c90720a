#include <cmail/imap/search.h>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace cmail;
using namespace cmail::imap;
using K = SearchKey::Kind;

namespace {

std::vector<Value> values(std::string_view wire) {
  Options o;
  o.utf8 = true;  // UTF-8 in quoted strings (RFC 9051)
  auto r = parse_values(wire, o);
  if (auto* e = std::get_if<Error>(&r)) FAIL_CHECK("values do not parse: ", e->message);
  auto* v = std::get_if<std::vector<Value>>(&r);
  return v ? *v : std::vector<Value>{};
}

SearchRequest parse_ok(std::string_view wire, bool uid = false) {
  auto r = parse_search(values(wire), uid);
  if (auto* e = std::get_if<SearchError>(&r)) FAIL_CHECK("search does not parse: ", wire, ": ", e->text);
  auto* q = std::get_if<SearchRequest>(&r);
  return q ? *q : SearchRequest{};
}

SearchError parse_err(std::string_view wire, const SearchLimits& limits = {}) {
  auto r = parse_search(values(wire), false, limits);
  auto* e = std::get_if<SearchError>(&r);
  if (!e) FAIL_CHECK("search parsed but should not: ", wire);
  return e ? *e : SearchError{};
}

// The one key of a request of one key.
SearchKey one(std::string_view wire) {
  SearchRequest r = parse_ok(wire);
  REQUIRE(r.key.kind == K::And);
  REQUIRE(r.key.children.size() == 1);
  return r.key.children.front();
}

std::int64_t at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
}

// A MessageText that counts its calls.
struct CountingText : MessageText {
  std::string head, text;
  int header_calls = 0, body_calls = 0;
  std::string_view header() override { ++header_calls; return head; }
  std::string_view body() override { ++body_calls; return text; }
};

struct Stored {
  std::string octets;
  mail::Part root;
  StoredMessageText text;
  explicit Stored(std::string m) : octets(std::move(m)), root(mail::parse_structure(octets)), text(octets, root) {}
};

bool search(std::string_view wire, const MessageView& m, const SearchContext& c = {}) {
  return matches(parse_ok(wire).key, m, c);
}

}  // namespace

TEST_CASE("imap search: every key parses to its kind") {
  struct Case {
    const char* wire;
    K kind;
  };
  const Case cases[] = {
      {"ANSWERED", K::Flag},     {"DELETED", K::Flag},        {"DRAFT", K::Flag},
      {"FLAGGED", K::Flag},      {"SEEN", K::Flag},           {"UNANSWERED", K::NoFlag},
      {"UNDELETED", K::NoFlag},  {"UNDRAFT", K::NoFlag},      {"UNFLAGGED", K::NoFlag},
      {"unseen", K::NoFlag},     {"RECENT", K::Recent},       {"NEW", K::New},
      {"OLD", K::Old},           {"ALL", K::And},             {"KEYWORD $Junk", K::Keyword},
      {"UNKEYWORD foo", K::Unkeyword}, {"LARGER 10", K::Larger}, {"SMALLER 10", K::Smaller},
      {"BEFORE 1-Jan-2020", K::Before}, {"ON 1-Jan-2020", K::On}, {"SINCE 1-Jan-2020", K::Since},
      {"SENTBEFORE 1-Jan-2020", K::SentBefore}, {"SENTON \"1-Jan-2020\"", K::SentOn},
      {"SENTSINCE 01-jan-2020", K::SentSince}, {"BCC a", K::Header}, {"CC a", K::Header},
      {"FROM a", K::Header},     {"TO a", K::Header},         {"SUBJECT \"a b\"", K::Header},
      {"HEADER X-Spam yes", K::Header}, {"BODY {3}\r\nabc", K::Body}, {"TEXT x", K::Text},
      {"UID 1:3", K::Uid},       {"1:3,7", K::Sequence},      {"*", K::Sequence},
      {"$", K::Sequence},        {"5", K::Sequence},          {"NOT SEEN", K::Not},
      {"OR SEEN DRAFT", K::Or},  {"(SEEN DRAFT)", K::And},    {"MODSEQ 5", K::ModSeq},
  };
  for (const Case& c : cases) {
    CAPTURE(c.wire);
    CHECK(one(c.wire).kind == c.kind);
  }
  CHECK(one("UNSEEN").flags == kSeen);
  CHECK(one("ANSWERED").flags == kAnswered);
  CHECK(one("UNDRAFT").flags == kDraft);
  CHECK(one("ALL").children.empty());
  CHECK(one("FROM bob").name == "from");
  CHECK(one("FROM bob").text == "bob");
  CHECK(one("BCC x").name == "bcc");
  SearchKey h = one("HEADER X-Spam-Flag \"\"");
  CHECK(h.name == "x-spam-flag");
  CHECK(h.text.empty());
  CHECK(one("LARGER 5000000000").number == 5000000000ull);
  CHECK(one("BEFORE 29-Feb-2024").day == days_from_civil(2024, 2, 29));
  CHECK(one("1:3,7").set.to_string() == "1:3,7");
  CHECK(one("UID 4:*").set.star);
  CHECK(one("KEYWORD $Forwarded").text == "$Forwarded");
  CHECK(parse_ok("$").uses_saved);
  CHECK(parse_ok("UID $").uses_saved);
  CHECK_FALSE(parse_ok("UID 1").uses_saved);
  CHECK(parse_ok("body x", true).uid);
}

TEST_CASE("imap search: nesting, OR, NOT and the order of evaluation") {
  SearchKey k = one("OR (SEEN FROM bob) NOT (DELETED)");
  REQUIRE(k.children.size() == 2);
  // the header key of the list moved behind SEEN; OR's cheap side (NOT DELETED) goes first
  CHECK(k.children[0].kind == K::Not);
  CHECK(k.children[0].children.at(0).children.at(0).kind == K::Flag);
  CHECK(k.children[1].children.at(0).kind == K::Flag);
  CHECK(k.children[1].children.at(1).kind == K::Header);
  SearchRequest r = parse_ok("BODY x SUBJECT y SEEN UID 3");
  REQUIRE(r.key.children.size() == 4);
  CHECK(r.key.children[0].kind == K::Flag);
  CHECK(r.key.children[1].kind == K::Uid);
  CHECK(r.key.children[2].kind == K::Header);
  CHECK(r.key.children[3].kind == K::Body);
  SearchKey n = one("NOT NOT SEEN");
  CHECK(n.children.at(0).kind == K::Not);
  CHECK(n.children.at(0).children.at(0).kind == K::Flag);
}

TEST_CASE("imap search: RETURN, CHARSET and MODSEQ") {
  SearchRequest r = parse_ok("RETURN () ALL");
  CHECK(r.esearch);
  CHECK(r.returns == kReturnAll);  // RFC 4731: RETURN () is RETURN (ALL)
  r = parse_ok("RETURN (MIN max Count) SEEN");
  CHECK(r.returns == (kReturnMin | kReturnMax | kReturnCount));
  r = parse_ok("RETURN (SAVE) CHARSET UTF-8 SEEN");
  CHECK(r.returns == kReturnSave);
  CHECK(r.charset == "UTF-8");
  CHECK(parse_ok("CHARSET us-ascii TEXT x").charset == "US-ASCII");
  CHECK_FALSE(parse_ok("SEEN").esearch);
  SearchError e = parse_err("CHARSET ISO-8859-2 TEXT x");
  CHECK(e.bad_charset);
  CHECK(e.text.find("[BADCHARSET (UTF-8 US-ASCII)]") == 0);
  CHECK_FALSE(parse_err("RETURN (FOO) ALL").bad_charset);
  parse_err("RETURN MIN ALL");
  parse_err("RETURN (MIN)");
  parse_err("CHARSET");

  r = parse_ok("MODSEQ 620162338");
  CHECK(r.modseq);
  CHECK(r.key.children.at(0).number == 620162338);
  SearchKey m = one("MODSEQ \"/flags/\\\\draft\" all 620162338");
  CHECK(m.entry == "/flags/\\draft");
  CHECK(m.entry_type == "all");
  CHECK(m.number == 620162338);
  CHECK(one("MODSEQ 0").number == 0);
  CHECK_FALSE(parse_ok("SEEN").modseq);
  parse_err("MODSEQ \"/flags/\\\\draft\" both 5");
  parse_err("MODSEQ \"/other/x\" all 5");
  parse_err("MODSEQ \"/flags/\\\\draft\" all");
  parse_err("MODSEQ x");
}

TEST_CASE("imap search: errors") {
  for (const char* wire : {"FOO", "SEEN FOO", "KEYWORD", "KEYWORD \\Seen", "LARGER", "LARGER x", "LARGER -1",
                           "BEFORE", "BEFORE 31-Feb-2021", "BEFORE 29-Feb-2023", "BEFORE 1-Foo-2020",
                           "BEFORE 1-Jan-20", "BEFORE 123-Jan-2020", "BEFORE 2020-01-01", "ON (1-Jan-2020)",
                           "FROM", "FROM (a)", "HEADER", "HEADER X", "HEADER \"\" x", "HEADER \"a b\" x",
                           "NOT", "OR SEEN", "OR", "UID", "UID x", "UID 0", "()", "SEEN ()", "0", "1:0,",
                           "\"SEEN\"", "TEXT x FOO", "RETURN (ALL)"}) {
    CAPTURE(wire);
    SearchError e = parse_err(wire);
    CHECK_FALSE(e.text.empty());
    CHECK_FALSE(e.bad_charset);
  }
  CHECK(parse_err("FOO").text == "unknown search key FOO");
  CHECK(parse_err("LARGER").text == "missing argument to LARGER");
  CHECK(parse_search({}, false) == std::variant<SearchRequest, SearchError>(SearchError{"missing search key"}));

  // Depth: 32 levels are taken, 33 are not (NOT chains and lists alike).
  std::string nots;
  for (int i = 0; i < 31; ++i) nots += "NOT ";
  parse_ok(nots + "SEEN");
  CHECK(parse_err("NOT " + nots + "SEEN").text == "search keys nested too deep");
  std::string open(31, '('), close(31, ')');
  parse_ok(open + "SEEN" + close);
  parse_err("(" + open + "SEEN" + close + ")");
  SearchLimits small;
  small.max_keys = 3;
  CHECK(parse_err("SEEN DRAFT FLAGGED DELETED", small).text == "too many search keys");
  CHECK(std::holds_alternative<SearchRequest>(parse_search(values("SEEN DRAFT FLAGGED"), false, small)));
}

TEST_CASE("imap search: dates") {
  CHECK(days_from_civil(1970, 1, 1) == 0);
  CHECK(days_from_civil(1969, 12, 31) == -1);
  CHECK(days_from_civil(2000, 3, 1) == 11017);
  CHECK(days_from_civil(2024, 2, 29) + 1 == days_from_civil(2024, 3, 1));
  CHECK(parse_search_date("1-Jan-1970") == 0);
  CHECK(parse_search_date("01-JAN-1970") == 0);
  CHECK(parse_search_date("31-Dec-1969") == -1);
  CHECK_FALSE(parse_search_date("0-Jan-1970"));
  CHECK_FALSE(parse_search_date("1-Jan-1970x"));
  CHECK_FALSE(parse_search_date("1-January-1970"));
  CHECK(parse_rfc5322_day("Tue, 1 Jul 2003 10:52:37 +0200") == days_from_civil(2003, 7, 1));
  CHECK(parse_rfc5322_day("1 Jul 2003 23:59 -1200") == days_from_civil(2003, 7, 1));
  CHECK(parse_rfc5322_day("(sent) Thu,\r\n 13 Feb 69 23:32:54 -0330") == days_from_civil(1969, 2, 13));
  CHECK(parse_rfc5322_day("13 Feb 03 23:32:54 -0330") == days_from_civil(2003, 2, 13));
  CHECK(parse_rfc5322_day("13 Feb 103 23:32:54 GMT") == days_from_civil(2003, 2, 13));
  CHECK_FALSE(parse_rfc5322_day("yesterday"));
  CHECK_FALSE(parse_rfc5322_day("30 Feb 2003 10:00 +0000"));
  CHECK_FALSE(parse_rfc5322_day(""));
}

TEST_CASE("imap search: case folding") {
  CHECK(search_fold("Hello WORLD") == "hello world");
  CHECK(search_fold("\xC3\x84\xC3\x96\xC3\x9C \xC3\x9F") == "\xC3\xA4\xC3\xB6\xC3\xBC \xC3\x9F");  // ÄÖÜ ß
  CHECK(search_fold("\xC3\x97") == "\xC3\x97");  // the multiplication sign is no letter
  CHECK(search_fold("\xC5\x81\xC3\xB3" "d\xC5\xBA") == "\xC5\x82\xC3\xB3" "d\xC5\xBA");  // Łódź
  CHECK(search_fold("\xC5\xB8") == "\xC3\xBF");  // Ÿ -> ÿ
  CHECK(search_fold("\xCE\xA3\xCE\x91") == "\xCF\x83\xCE\xB1");  // ΣΑ
  CHECK(search_fold("\xCF\x82") == "\xCF\x83");  // final sigma
  CHECK(search_fold("\xD0\x9F\xD0\x81") == "\xD0\xBF\xD1\x91");  // ПЁ
  CHECK(search_fold("\xFF\xC3") == "\xFF\xC3");  // invalid UTF-8 stays
  CHECK(search_fold("\xE2\x82\xAC") == "\xE2\x82\xAC");  // €
}

TEST_CASE("imap search: flags, keywords, sizes, numbers, modseq") {
  std::vector<std::string> kws = {"$Forwarded", "Work"};
  MessageView m;
  m.seq = 3;
  m.uid = 30;
  m.flags = kSeen | kFlagged;
  m.keywords = kws;
  m.size = 1000;
  m.modseq = 77;
  std::vector<std::uint32_t> uids = {10, 20, 30, 40};
  SearchContext c = SearchContext::of(uids);
  CHECK(c.max_seq == 4);
  CHECK(c.max_uid == 40);
  CHECK(search("SEEN FLAGGED", m, c));
  CHECK_FALSE(search("SEEN DELETED", m, c));
  CHECK(search("UNANSWERED UNDELETED UNDRAFT", m, c));
  CHECK_FALSE(search("UNSEEN", m, c));
  CHECK_FALSE(search("UNFLAGGED", m, c));
  CHECK(search("ALL", m, c));
  CHECK(search("KEYWORD work", m, c));  // keywords compare in any case
  CHECK(search("UNKEYWORD $Junk", m, c));
  CHECK_FALSE(search("KEYWORD $Junk", m, c));
  CHECK_FALSE(search("UNKEYWORD $forwarded", m, c));
  CHECK(search("LARGER 999", m, c));
  CHECK_FALSE(search("LARGER 1000", m, c));
  CHECK(search("SMALLER 1001", m, c));
  CHECK_FALSE(search("SMALLER 1000", m, c));
  CHECK(search("3", m, c));
  CHECK(search("1:2,3", m, c));
  CHECK_FALSE(search("1:2,4", m, c));
  CHECK_FALSE(search("*", m, c));
  CHECK(search("4:*", m, SearchContext::of(std::vector<std::uint32_t>{10, 20, 30})));  // "*" is 3 there
  CHECK(search("UID 30", m, c));
  CHECK(search("UID 31:*", m, SearchContext::of(std::vector<std::uint32_t>{10, 30})));
  CHECK_FALSE(search("UID 31:*", m, c));
  CHECK_FALSE(search("UID 1:29", m, c));
  CHECK(search("MODSEQ 77", m, c));
  CHECK_FALSE(search("MODSEQ 78", m, c));
  CHECK(search("OR DELETED SEEN", m, c));
  CHECK_FALSE(search("OR DELETED DRAFT", m, c));
  CHECK(search("NOT DELETED", m, c));
  CHECK(search("(SEEN (FLAGGED (NOT DRAFT)))", m, c));

  // RFC 5182 "$": the saved UIDs
  std::vector<std::uint32_t> saved = {20, 30};
  SearchContext cs = SearchContext::of(uids, saved);
  CHECK(search("$", m, cs));
  CHECK(search("UID $", m, cs));
  CHECK_FALSE(search("$", m, c));  // nothing saved
  m.uid = 40;
  CHECK_FALSE(search("UID $", m, cs));

  m.recent = true;
  CHECK(search("RECENT", m, c));
  CHECK_FALSE(search("OLD", m, c));
  CHECK_FALSE(search("NEW", m, c));  // seen
  m.flags = 0;
  CHECK(search("NEW", m, c));
  m.recent = false;
  CHECK(search("OLD", m, c));
  CHECK_FALSE(search("NEW", m, c));
}

TEST_CASE("imap search: internal dates at day edges, in the configured zone") {
  MessageView m;
  m.internal_date = at(2021, 3, 14, 23, 59, 59);
  CHECK(search("ON 14-Mar-2021", m));
  CHECK(search("BEFORE 15-Mar-2021", m));
  CHECK_FALSE(search("BEFORE 14-Mar-2021", m));
  CHECK(search("SINCE 14-Mar-2021", m));
  CHECK_FALSE(search("SINCE 15-Mar-2021", m));
  m.internal_date += 1;  // midnight
  CHECK(search("ON 15-Mar-2021", m));
  CHECK(search("SINCE 15-Mar-2021", m));
  CHECK_FALSE(search("BEFORE 15-Mar-2021", m));
  // Read in UTC-05:00 it is still the 14th.
  SearchContext west;
  west.zone_minutes = -300;
  CHECK(search("ON 14-Mar-2021", m, west));
  CHECK_FALSE(search("SINCE 15-Mar-2021", m, west));
  // Before 1970 too.
  m.internal_date = at(1969, 12, 31, 12);
  CHECK(search("ON 31-Dec-1969", m));
  CHECK(search("BEFORE 1-Jan-1970", m));
}

TEST_CASE("imap search: header text, encoded words, Date and laziness") {
  CountingText t;
  t.head =
      "From: =?iso-8859-1?q?Andr=E9?= <andre@example.org>\r\n"
      "To: bob@example.net,\r\n carol@example.net\r\n"
      "Subject: =?utf-8?b?w4RyZ2VyIMO8YmVy?= =?utf-8?q?_Stra=C3=9Fen?=\r\n"
      "Date: Mon, 15 Mar 2021 01:30:00 +1400\r\n"
      "X-Empty:\r\n"
      "\r\n";
  t.text = "Hello there";
  MessageView m;
  m.internal_date = at(2021, 3, 14, 11, 30);  // the same instant, 14 March in UTC
  m.text = &t;
  CHECK(search("FROM \"andré\"", m));
  CHECK(search("FROM \"ANDRÉ\"", m));
  CHECK(search("FROM EXAMPLE.ORG", m));
  CHECK_FALSE(search("FROM bob", m));
  CHECK(search("TO carol", m));  // a folded field
  CHECK(search("SUBJECT \"ärger über straßen\"", m));
  CHECK(search("SUBJECT \"ÄRGER\"", m));
  CHECK_FALSE(search("SUBJECT =?utf-8", m));  // the decoded text is searched, not the word
  CHECK_FALSE(search("CC x", m));
  CHECK_FALSE(search("CC \"\"", m));  // no Cc field
  CHECK(search("HEADER x-empty \"\"", m));  // present
  CHECK(search("HEADER X-EMPTY \"\"", m));
  CHECK_FALSE(search("HEADER X-Other \"\"", m));
  CHECK(search("HEADER date \"+1400\"", m));
  // Sent dates are the Date field's own day, internal dates the UTC day here.
  CHECK(search("SENTON 15-Mar-2021", m));
  CHECK(search("ON 14-Mar-2021", m));
  CHECK(search("SENTSINCE 15-Mar-2021", m));
  CHECK_FALSE(search("SENTBEFORE 15-Mar-2021", m));
  CHECK(search("SENTBEFORE 16-Mar-2021", m));
  CHECK(search("TEXT \"andré\"", m));
  CHECK(search("TEXT \"subject: ärger\"", m));
  CHECK(search("TEXT THERE", m));
  CHECK(search("BODY hello", m));
  CHECK_FALSE(search("BODY andre", m));

  // Cheap keys first: a failing flag key spares the text.
  t.header_calls = t.body_calls = 0;
  CHECK_FALSE(search("BODY hello SUBJECT x SEEN", m));
  CHECK(t.header_calls == 0);
  CHECK(t.body_calls == 0);
  CHECK_FALSE(search("BODY hello SUBJECT nothing", m));
  CHECK(t.header_calls == 1);
  CHECK(t.body_calls == 0);

  // No text, no Date: text keys do not match; NOT of them does.
  MessageView bare;
  CHECK_FALSE(search("BODY x", bare));
  CHECK_FALSE(search("SENTON 15-Mar-2021", bare));
  CHECK(search("NOT TEXT x", bare));
  CountingText nodate;
  nodate.head = "Subject: x\r\n\r\n";
  bare.text = &nodate;
  CHECK_FALSE(search("SENTSINCE 1-Jan-1900", bare));
  CHECK_FALSE(search("SENTBEFORE 1-Jan-3000", bare));
}

TEST_CASE("imap search: stored messages (base64, quoted-printable, ISO-8859-1, multipart, rfc822)") {
  Stored b64(
      "Subject: b64\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "R3LDvMOfZSBhdXMgS8O2bG4K\r\n");  // "Grüße aus Köln\n"
  MessageView m;
  m.text = &b64.text;
  CHECK(search("BODY \"grüsse\"", m) == false);
  CHECK(search("BODY \"GRÜSSE\"", m) == false);
  CHECK(search("BODY \"grüße aus köln\"", m));
  CHECK(search("BODY \"KÖLN\"", m));
  CHECK_FALSE(search("BODY R3LD", m));  // the encoded text is not searched
  CHECK(search("SUBJECT b64", m));
  CHECK(b64.text.header().substr(0, 13) == "Subject: b64\r");

  Stored qp(
      "Subject: qp\r\n"
      "Content-Type: text/plain; charset=\"ISO-8859-1\"\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n"
      "\r\n"
      "Caf=E9 cr=E8me br=FBl=E9e, so=\r\n"
      "ft break\r\n");
  m.text = &qp.text;
  CHECK(search("BODY \"café crème\"", m));
  CHECK(search("BODY \"CRÈME BRÛLÉE\"", m));
  CHECK(search("BODY \"soft break\"", m));
  CHECK_FALSE(search("BODY =E9", m));
  CHECK(search("TEXT \"brûlée\"", m));

  Stored multi(
      "From: a@example.org\r\n"
      "Subject: parts\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
      "\r\n"
      "preamble words\r\n"
      "--XX\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "first plain part\r\n"
      "--XX\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "c2VjcmV0IGJsb2I=\r\n"  // "secret blob"
      "--XX\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n"
      "Subject: =?iso-8859-1?q?inner_=E9t=E9?=\r\n"
      "Content-Type: text/html; charset=iso-8859-1\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n"
      "\r\n"
      "<p>Bient=F4t</p>\r\n"
      "--XX--\r\n"
      "epilogue\r\n");
  m.text = &multi.text;
  CHECK(search("BODY \"first plain\"", m));
  CHECK_FALSE(search("BODY secret", m));     // not a text part
  CHECK_FALSE(search("BODY preamble", m));   // in no part
  CHECK(search("BODY \"inner été\"", m));     // the inner header, decoded
  CHECK(search("BODY \"bientôt\"", m));
  CHECK_FALSE(search("SUBJECT inner", m));   // the outer Subject only
  CHECK(search("SUBJECT parts", m));
  CHECK(search("TEXT \"a@example.org\"", m));
}

TEST_CASE("imap search: repeated fields, other charsets, non-text roots") {
  Stored twice(
      "Received: from a.example\r\n"
      "Received: from b.example\r\n"
      "Content-Type: text/plain; charset=koi8-r\r\n"
      "\r\n"
      "plain words\r\n");
  MessageView m;
  m.text = &twice.text;
  CHECK(search("HEADER Received b.example", m));  // any occurrence of the field
  CHECK(search("HEADER Received a.example", m));
  CHECK(search("BODY \"plain words\"", m));  // an unknown charset is searched as it is
  CHECK(twice.text.body().data() == twice.text.body().data());  // decoded once, then kept

  Stored pdf(
      "Subject: scan\r\n"
      "Content-Type: application/pdf\r\n"
      "\r\n"
      "%PDF-1.4 hidden\r\n");
  m.text = &pdf.text;
  CHECK(pdf.text.body().empty());
  CHECK_FALSE(search("BODY hidden", m));
  CHECK_FALSE(search("TEXT hidden", m));
  CHECK(search("TEXT scan", m));
}

TEST_CASE("imap search: SEARCH responses") {
  std::vector<SearchMatch> hits = {{2, 20, 5}, {5, 50, 9}, {7, 70, 3}};
  SearchResponse r = encode_search_response(parse_ok("ALL"), hits, "a1");
  CHECK(r.line == "* SEARCH 2 5 7\r\n");
  CHECK_FALSE(r.saved);
  CHECK(encode_search_response(parse_ok("ALL", true), hits, "a1").line == "* SEARCH 20 50 70\r\n");
  CHECK(encode_search_response(parse_ok("MODSEQ 3"), hits, "a1").line == "* SEARCH 2 5 7 (MODSEQ 9)\r\n");
  CHECK(encode_search_response(parse_ok("MODSEQ 3"), {}, "a1").line == "* SEARCH\r\n");
  CHECK(encode_search_response(parse_ok("ALL"), {}, "a1").line == "* SEARCH\r\n");
  // IMAP4rev2: always ESEARCH, as RETURN (ALL)
  CHECK(encode_search_response(parse_ok("ALL", true), hits, "a1", true).line ==
        "* ESEARCH (TAG \"a1\") UID ALL 20,50,70\r\n");
}

TEST_CASE("imap search: ESEARCH responses and SAVE") {
  std::vector<SearchMatch> hits = {{1, 1, 4}, {2, 2, 8}, {3, 3, 2}, {5, 9, 6}};
  SearchRequest all = parse_ok("RETURN (MIN MAX COUNT ALL) ALL", true);
  CHECK(encode_search_response(all, hits, "a1").line ==
        "* ESEARCH (TAG \"a1\") UID MIN 1 MAX 9 COUNT 4 ALL 1:3,9\r\n");
  SearchRequest seq = parse_ok("RETURN (ALL) ALL");
  CHECK(encode_search_response(seq, hits, "t").line == "* ESEARCH (TAG \"t\") ALL 1:3,5\r\n");
  CHECK(encode_search_response(all, {}, "a1").line == "* ESEARCH (TAG \"a1\") UID COUNT 0\r\n");
  CHECK(encode_search_response(seq, {}, "a1").line == "* ESEARCH (TAG \"a1\")\r\n");
  // MODSEQ: of all found with ALL or COUNT, of MIN/MAX's messages otherwise
  CHECK(encode_search_response(parse_ok("RETURN (COUNT) MODSEQ 1"), hits, "x").line ==
        "* ESEARCH (TAG \"x\") COUNT 4 MODSEQ 8\r\n");
  CHECK(encode_search_response(parse_ok("RETURN (MIN) MODSEQ 1"), hits, "x").line ==
        "* ESEARCH (TAG \"x\") MIN 1 MODSEQ 4\r\n");
  CHECK(encode_search_response(parse_ok("RETURN (MIN MAX) MODSEQ 1"), hits, "x").line ==
        "* ESEARCH (TAG \"x\") MIN 1 MAX 5 MODSEQ 6\r\n");

  // SAVE alone: no response, the UIDs saved
  SearchResponse s = encode_search_response(parse_ok("RETURN (SAVE) ALL"), hits, "a1");
  CHECK(s.line.empty());
  REQUIRE(s.saved);
  CHECK(*s.saved == std::vector<std::uint32_t>{1, 2, 3, 9});
  s = encode_search_response(parse_ok("RETURN (SAVE MIN) ALL"), hits, "a1");
  CHECK(s.line == "* ESEARCH (TAG \"a1\") MIN 1\r\n");
  CHECK(*s.saved == std::vector<std::uint32_t>{1});
  s = encode_search_response(parse_ok("RETURN (SAVE MAX) ALL"), hits, "a1");
  CHECK(*s.saved == std::vector<std::uint32_t>{9});  // UIDs even for SEARCH
  s = encode_search_response(parse_ok("RETURN (SAVE MIN MAX) ALL"), hits, "a1");
  CHECK(*s.saved == std::vector<std::uint32_t>{1, 9});
  s = encode_search_response(parse_ok("RETURN (SAVE MIN COUNT) ALL"), hits, "a1");
  CHECK(*s.saved == std::vector<std::uint32_t>{1, 2, 3, 9});
  s = encode_search_response(parse_ok("RETURN (SAVE MIN MAX) ALL"), std::vector<SearchMatch>{{4, 7, 0}}, "a1");
  CHECK(*s.saved == std::vector<std::uint32_t>{7});
  s = encode_search_response(parse_ok("RETURN (SAVE) ALL"), {}, "a1");
  CHECK(s.line.empty());
  CHECK(s.saved->empty());
  CHECK_FALSE(encode_search_response(parse_ok("RETURN (MIN) ALL"), hits, "a1").saved);
}

TEST_CASE("imap search: compress_numbers") {
  CHECK(compress_numbers(std::vector<std::uint32_t>{}) == "");
  CHECK(compress_numbers(std::vector<std::uint32_t>{7}) == "7");
  CHECK(compress_numbers(std::vector<std::uint32_t>{1, 2, 3, 5, 7, 8}) == "1:3,5,7:8");
  CHECK(compress_numbers(std::vector<std::uint32_t>{1, 1, 2, 4}) == "1:2,4");
  CHECK(compress_numbers(std::vector<std::uint32_t>{4294967294u, 4294967295u}) == "4294967294:4294967295");
}
