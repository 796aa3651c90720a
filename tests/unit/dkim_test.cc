// mail::dkim: tag lists, signatures and key records (RFC 6376 3.2, 3.5, 3.6.1; RFC 8463), the
// canonicalizations with the example of RFC 6376 3.4.5, field selection and the header hash
// input (3.7, 5.4.2), the body canonicalizer fed whole, byte by byte and in random splits.
#include "seed.h"

#include <cmail/mail/dkim.h>

#include <doctest/doctest.h>

#include <random>

using namespace cmail;
using namespace cmail::mail::dkim;

namespace {

std::string body(Canon c, std::string_view in, std::optional<std::uint64_t> limit = std::nullopt) {
  BodyCanonicalizer b(c, limit);
  std::string out;
  b.feed(in, out);
  b.finish(out);
  CHECK(b.length() == out.size());
  return out;
}

// The same input one octet at a time and in random pieces gives the same output.
void same_in_pieces(Canon c, std::string_view in, std::optional<std::uint64_t> limit = std::nullopt) {
  const std::string whole = body(c, in, limit);
  BodyCanonicalizer bytes(c, limit);
  std::string one;
  for (char ch : in) bytes.feed(std::string_view(&ch, 1), one);
  bytes.finish(one);
  CHECK(one == whole);
  BodyCanonicalizer random(c, limit);
  std::string pieces;
  std::string_view rest = in;
  while (!rest.empty()) {
    std::size_t n = std::uniform_int_distribution<std::size_t>(1, 7)(test::test_rng());
    n = std::min(n, rest.size());
    random.feed(rest.substr(0, n), pieces);
    rest.remove_prefix(n);
  }
  random.finish(pieces);
  CHECK(pieces == whole);
}

// RFC 6376 3.4.5's example message.
constexpr std::string_view kExample =
    "A: X\r\n"
    "B : Y\t\r\n"
    "\tZ  \r\n"
    "\r\n"
    " C \r\n"
    "D \t E\r\n"
    "\r\n"
    "\r\n";

}  // namespace

TEST_CASE("dkim: the canonicalization example of RFC 6376 3.4.5") {
  std::size_t body_at = 0;
  const auto fields = split_header(kExample, &body_at);
  REQUIRE(fields.size() == 2);
  CHECK(fields[0].name == "A");
  CHECK(fields[1].name == "B");  // the WSP before the colon is not part of the name
  CHECK(fields[1].raw == "B : Y\t\r\n\tZ  \r\n");
  CHECK(canonical_header(fields[0], Canon::Relaxed) == "a:X\r\n");
  CHECK(canonical_header(fields[1], Canon::Relaxed) == "b:Y Z\r\n");
  CHECK(canonical_header(fields[1], Canon::Simple) == "B : Y\t\r\n\tZ  \r\n");
  const std::string_view b = kExample.substr(body_at);
  CHECK(body(Canon::Relaxed, b) == " C\r\nD E\r\n");
  CHECK(body(Canon::Simple, b) == " C \r\nD \t E\r\n");
  same_in_pieces(Canon::Relaxed, b);
  same_in_pieces(Canon::Simple, b);
}

TEST_CASE("dkim: empty bodies, bodies without a final CRLF, bare CRs, and l=") {
  CHECK(body(Canon::Simple, "") == "\r\n");  // RFC 6376 3.4.3
  CHECK(body(Canon::Relaxed, "") == "");     // RFC 6376 3.4.4
  CHECK(body(Canon::Simple, "\r\n\r\n") == "\r\n");
  CHECK(body(Canon::Relaxed, " \t\r\n \r\n") == "");
  CHECK(body(Canon::Simple, "abc") == "abc\r\n");
  CHECK(body(Canon::Relaxed, "abc  ") == "abc\r\n");
  CHECK(body(Canon::Relaxed, "a\r\n\r\nb\r\n\r\n") == "a\r\n\r\nb\r\n");  // inner empty lines stay
  CHECK(body(Canon::Simple, "a\rb\r\n") == "a\rb\r\n");
  CHECK(body(Canon::Simple, "a\r") == "a\r\r\n");
  CHECK(body(Canon::Simple, "hello world\r\n", 5) == "hello");
  CHECK(body(Canon::Relaxed, "a  b\r\n\r\n", 100) == "a b\r\n");
  for (std::string_view in : {"", "x", "\r", "\r\r\n", " \r\n\t\r\n", "a \r\n b\t\r\n\r\nc", "line\r\n\r\n\r\n"}) {
    same_in_pieces(Canon::Simple, in);
    same_in_pieces(Canon::Relaxed, in);
    same_in_pieces(Canon::Relaxed, in, 3);
  }
}

TEST_CASE("dkim: tag lists") {
  auto t = parse_tag_list(" a = 1 ;b=two words\r\n\tfolded; c=;\r\n");
  REQUIRE(t.has_value());
  REQUIRE(t->size() == 3);
  CHECK((*t)[0] == std::pair<std::string, std::string>{"a", "1"});
  CHECK((*t)[1].second == "two words\r\n\tfolded");  // white space inside a value is kept
  CHECK((*t)[2].second.empty());
  CHECK(parse_tag_list("").has_value());
  CHECK_FALSE(parse_tag_list("a=1; a=2").has_value());  // RFC 6376 3.2: no tag twice
  CHECK_FALSE(parse_tag_list("a=1;;b=2").has_value());
  CHECK_FALSE(parse_tag_list("1a=x").has_value());
  CHECK_FALSE(parse_tag_list("a").has_value());
  CHECK_FALSE(parse_tag_list("a=\x01").has_value());
  CHECK_FALSE(parse_tag_list("a=\xc3\xa9").has_value());
}

TEST_CASE("dkim: the signature of RFC 6376 Appendix A.2 parses") {
  const std::string v =
      "v=1; a=rsa-sha256; s=brisbane; d=example.com;\r\n"
      "      c=simple/simple; q=dns/txt; i=joe@football.example.com;\r\n"
      "      h=Received : From : To : Subject : Date : Message-ID;\r\n"
      "      bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
      "      b=AuUoFEfDxTDkHlLXSZEpZj79LICEps6eda7W3deTVFOk4yAUoqOB\r\n"
      "        4nujc7YopdG5dWLSdNg6xNAZpOPr+kHxt1IrE+NahM6L/LbvaHut\r\n"
      "        KVdkLLkpVaVVQPzeRDI009SO2Il5Lu7rDNH6mZckBdrIx0orEtZV\r\n"
      "        4bmp/YzhwvcubU4=;";
  auto s = parse_signature(v);
  REQUIRE_MESSAGE(s.has_value(), s.error().to_string());
  CHECK(s->algorithm == Algorithm::RsaSha256);
  CHECK(s->domain == "example.com");
  CHECK(s->selector == "brisbane");
  CHECK(s->key_name() == "brisbane._domainkey.example.com");
  CHECK(s->identity == "joe@football.example.com");
  CHECK(s->headers == std::vector<std::string>{"received", "from", "to", "subject", "date", "message-id"});
  CHECK(s->header_canon == Canon::Simple);
  CHECK(s->body_canon == Canon::Simple);
  CHECK(s->body_hash.size() == 32);  // a SHA-256
  CHECK(s->signature.size() == 128);  // a 1024-bit RSA signature
  CHECK_FALSE(s->body_length);
}

TEST_CASE("dkim: signatures a verifier must refuse (RFC 6376 3.5, 6.1.1; RFC 8301)") {
  const std::string ok = "v=1; a=rsa-sha256; d=example.test; s=sel; h=from:to; bh=AAAA; b=AAAA";
  REQUIRE(parse_signature(ok).has_value());
  auto with = [&](std::string_view from, std::string_view to) {
    std::string s = ok;
    s.replace(s.find(from), from.size(), to);
    return parse_signature(s);
  };
  CHECK_FALSE(with("v=1", "v=2").has_value());
  CHECK_FALSE(with("a=rsa-sha256", "a=rsa-sha1").has_value());  // RFC 8301 3.1
  CHECK_FALSE(with("a=rsa-sha256", "a=dsa-sha256").has_value());
  CHECK(with("a=rsa-sha256", "a=ed25519-sha256")->algorithm == Algorithm::Ed25519Sha256);  // RFC 8463
  CHECK_FALSE(with("h=from:to", "h=to:subject").has_value());  // RFC 6376 5.4: From is signed
  CHECK_FALSE(with("h=from:to", "h=from::to").has_value());
  CHECK_FALSE(with("h=from:to", "h=from:date 2 to").has_value());  // not a field name
  CHECK_FALSE(with("bh=AAAA", "bh=AA!A").has_value());
  CHECK_FALSE(with("b=AAAA", "b=AAA").has_value());
  CHECK_FALSE(with("d=example.test", "d=exa mple.test").has_value());
  CHECK_FALSE(with("s=sel", "s=").has_value());
  CHECK_FALSE(with("; b=AAAA", "").has_value());  // b= required
  CHECK(with("h=from:to", "h=from:to; i=@mail.example.test")->identity == "@mail.example.test");
  CHECK_FALSE(with("h=from:to", "h=from:to; i=joe@example.org").has_value());  // outside d=
  CHECK_FALSE(with("h=from:to", "h=from:to; i=joe@badexample.test").has_value());
  CHECK(*with("h=from:to", "h=from:to; l=120")->body_length == 120);
  CHECK_FALSE(with("h=from:to", "h=from:to; l=12a").has_value());
  CHECK_FALSE(with("h=from:to", "h=from:to; l=" + std::string(77, '1')).has_value());
  CHECK_FALSE(with("h=from:to", "h=from:to; t=200; x=100").has_value());
  CHECK(with("h=from:to", "h=from:to; t=100; x=200")->expiration == 200);
  CHECK_FALSE(with("h=from:to", "h=from:to; q=http/well-known").has_value());
  auto relaxed = with("h=from:to", "h=from:to; c=relaxed");
  CHECK(relaxed->header_canon == Canon::Relaxed);
  CHECK(relaxed->body_canon == Canon::Simple);  // "relaxed" alone: relaxed/simple
  CHECK(with("h=from:to", "h=from:to; c=relaxed/relaxed")->body_canon == Canon::Relaxed);
  CHECK_FALSE(with("h=from:to", "h=from:to; c=strange").has_value());
}

TEST_CASE("dkim: key records (RFC 6376 3.6.1, RFC 8463 4) and whether a key fits a signature") {
  auto rsa = parse_key_record(
      "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4"
      "jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB");
  REQUIRE(rsa.has_value());
  CHECK(rsa->key_type == Algorithm::RsaSha256);
  CHECK(rsa->public_key.size() == 162);  // the DER SubjectPublicKeyInfo of a 1024-bit key
  auto ed = parse_key_record("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  REQUIRE(ed.has_value());
  CHECK(ed->key_type == Algorithm::Ed25519Sha256);
  CHECK(ed->public_key.size() == 32);
  CHECK_FALSE(parse_key_record("k=rsa; v=DKIM1; p=AAAA").has_value());  // v= not first
  CHECK_FALSE(parse_key_record("v=DKIM2; p=AAAA").has_value());
  CHECK_FALSE(parse_key_record("k=dsa; p=AAAA").has_value());
  CHECK_FALSE(parse_key_record("v=DKIM1; k=rsa").has_value());  // no p=
  auto revoked = parse_key_record("v=DKIM1; p=");
  REQUIRE(revoked.has_value());
  CHECK(revoked->public_key.empty());

  Signature sig = *parse_signature("v=1; a=rsa-sha256; d=example.test; s=sel; h=from; bh=AAAA; b=AAAA; "
                                   "i=joe@sub.example.test");
  CHECK(key_fits(*rsa, sig).ok());
  CHECK_FALSE(key_fits(*ed, sig).ok());       // k= ed25519 for an rsa-sha256 signature
  CHECK_FALSE(key_fits(*revoked, sig).ok());
  CHECK_FALSE(key_fits(*parse_key_record("h=sha1; p=AAAA"), sig).ok());
  CHECK(key_fits(*parse_key_record("h=sha1:sha256; p=AAAA"), sig).ok());
  CHECK_FALSE(key_fits(*parse_key_record("s=tls; p=AAAA"), sig).ok());
  CHECK(key_fits(*parse_key_record("s=tls:email; p=AAAA"), sig).ok());
  CHECK_FALSE(key_fits(*parse_key_record("t=s; p=AAAA"), sig).ok());  // i= is a subdomain
  auto testing = parse_key_record("t=y:s; p=AAAA");
  CHECK(testing->testing);
  CHECK(testing->strict);
}

TEST_CASE("dkim: fields are selected from the bottom; a missing one selects nothing (over-signing)") {
  const std::string msg =
      "Received: one\r\n"
      "From: a@example.test\r\n"
      "Received: two\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "body\r\n";
  std::size_t body_at = 0;
  auto fields = split_header(msg, &body_at);
  REQUIRE(fields.size() == 4);
  CHECK(msg.substr(body_at) == "body\r\n");
  auto sel = select_headers(fields, {"received", "From", "received", "received", "from"});
  REQUIRE(sel.size() == 3);
  CHECK(sel[0].raw == "Received: two\r\n");
  CHECK(sel[1].raw == "From: a@example.test\r\n");
  CHECK(sel[2].raw == "Received: one\r\n");
  // A line without a colon ends the header section.
  std::size_t at = 0;
  auto odd = split_header("From: x\r\nnot a field\r\nmore\r\n", &at);
  CHECK(odd.size() == 1);
  CHECK(at == 9);
  auto no_body = split_header("From: x\r\n Folded\r\n", &at);
  REQUIRE(no_body.size() == 1);
  CHECK(no_body[0].raw == "From: x\r\n Folded\r\n");
  CHECK(at == 18);
}

TEST_CASE("dkim: the header hash input: the fields, then the signature with b= emptied, no final CRLF") {
  const std::string sig_field =
      "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=sel;\r\n"
      "\th=From : Subject; bh=AAAA;\r\n"
      "\tb=dGhpcyBpcyBub3QgYQ\r\n"
      "\t==\r\n";
  CHECK(without_signature_value(sig_field) ==
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=sel;\r\n\th=From : Subject; bh=AAAA;\r\n\tb=\r\n");
  CHECK(without_signature_value("DKIM-Signature: b=xyz; bh=AAAA\r\n") == "DKIM-Signature: b=; bh=AAAA\r\n");
  CHECK(without_signature_value("DKIM-Signature: bh=AAAA; b = xyz ;x=1\r\n") == "DKIM-Signature: bh=AAAA; b =;x=1\r\n");
  const std::string msg = sig_field + "From: Joe  <joe@example.test>\r\nSubject:  Hello \r\n\tWorld\r\n\r\nbody\r\n";
  auto fields = split_header(msg);
  CHECK(header_hash_input(fields, {"from", "subject"}, Canon::Relaxed, fields[0].raw) ==
        "from:Joe <joe@example.test>\r\n"
        "subject:Hello World\r\n"
        "dkim-signature:v=1; a=rsa-sha256; d=example.test; s=sel; h=From : Subject; bh=AAAA; b=");
  CHECK(header_hash_input(fields, {"from"}, Canon::Simple, fields[0].raw) ==
        "From: Joe  <joe@example.test>\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=sel;\r\n\th=From : Subject; bh=AAAA;\r\n\tb=");
}
