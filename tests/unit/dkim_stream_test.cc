// mail::dkim's Verifier and Signer over whole messages: the RFC 8463 A.3 message (both its
// signatures, with the keys of A.2), our own signatures verified back, what a change to the
// body or header does, key records that do not fit, the header splitter; every message fed
// whole, one octet at a time and in random pieces.
#include "seed.h"

#include <cmail/base64.h>
#include <cmail/crypto/keys.h>
#include <cmail/mail/dkim.h>

#include <doctest/doctest.h>

#include <map>
#include <random>

using namespace cmail;
using namespace cmail::mail;
using namespace cmail::mail::dkim;

namespace {

// RFC 8463 A.3, byte for byte (the blank line after "Joe." included).
constexpr std::string_view kRfc8463 =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n"
    "\r\n";

// RFC 8463 A.2's key records.
const std::map<std::string, std::string> kRfc8463Keys = {
    {"brisbane._domainkey.football.example.com", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
    {"test._domainkey.football.example.com",
     "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
     "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+"
     "2kryOTIKT+l/K4w3QIDAQAB"},
};

enum class Split { Whole, Bytes, Random };

void feed(Verifier& v, std::string_view m, Split how) {
  if (how == Split::Whole) {
    v.feed(m);
  } else if (how == Split::Bytes) {
    for (char c : m) v.feed(std::string_view(&c, 1));
  } else {
    while (!m.empty()) {
      std::size_t n = std::min(m.size(), std::uniform_int_distribution<std::size_t>(1, 40)(test::test_rng()));
      v.feed(m.substr(0, n));
      m.remove_prefix(n);
    }
  }
  v.finish();
}

std::vector<Verification> verify(std::string_view message, const std::map<std::string, std::string>& keys,
                                 Split how = Split::Whole, std::int64_t now = 0) {
  VerifyOptions o;
  o.now = now;
  Verifier v(o);
  feed(v, message, how);
  for (const auto& [i, name] : v.key_queries()) {
    TxtResult r;
    auto k = keys.find(name);
    if (k == keys.end()) {
      r.status = DnsStatus::NxDomain;
    } else {
      r.status = DnsStatus::Ok;
      r.records.push_back(k->second);
    }
    v.set_key(i, r);
  }
  return v.results();
}

std::string sign(std::string_view message, const crypto::PrivateKey& key, std::string_view selector = "sel",
                 std::string_view domain = "example.org") {
  Signer s;
  s.feed(message);
  s.finish();
  SignOptions o;
  o.domain = domain;
  o.selector = selector;
  o.timestamp = 1700000000;
  auto field = s.sign(key, o);
  REQUIRE_MESSAGE(field, field.error().to_string());
  return *field;
}

std::string record(const crypto::PrivateKey& key) {
  return std::string("v=DKIM1; k=") + crypto::to_string(key.type()) + "; p=" + base64_encode(key.public_key().bytes());
}

constexpr std::string_view kMessage =
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: lunch\r\n"
    "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n"
    "Shall we?\r\n"
    "\r\n"
    "\r\n";

}  // namespace

TEST_CASE("dkim verifier: both signatures of RFC 8463 A.3 pass, in any split") {
  for (Split how : {Split::Whole, Split::Bytes, Split::Random}) {
    auto r = verify(kRfc8463, kRfc8463Keys, how);
    REQUIRE(r.size() == 2);
    CHECK(r[0].result == Answer::Pass);
    CHECK(r[0].algorithm == Algorithm::Ed25519Sha256);
    CHECK(r[0].selector == "brisbane");
    CHECK(r[0].b == "/gCrinpc");
    CHECK(r[1].result == Answer::Pass);
    CHECK(r[1].algorithm == Algorithm::RsaSha256);
    CHECK(r[1].domain == "football.example.com");
    CHECK(r[1].identity == "@football.example.com");
  }
}

TEST_CASE("dkim verifier: changes to the RFC 8463 message are found") {
  std::string body = std::string(kRfc8463);
  body.replace(body.find("hungry"), 6, "thirst");
  auto r = verify(body, kRfc8463Keys);
  REQUIRE(r.size() == 2);
  CHECK(r[0].result == Answer::Fail);
  CHECK(r[0].reason == "body hash did not verify");
  CHECK(r[1].result == Answer::Fail);

  std::string subject = std::string(kRfc8463);
  subject.replace(subject.find("dinner"), 6, "supper");
  r = verify(subject, kRfc8463Keys);
  CHECK(r[0].result == Answer::Fail);
  CHECK(r[0].reason == "signature did not verify");

  // Relaxed canonicalization: white space and case in header field names may change.
  std::string relaxed = std::string(kRfc8463);
  relaxed.replace(relaxed.find("Subject: Is"), 11, "SUBJECT:    Is");
  r = verify(relaxed, kRfc8463Keys);
  CHECK(r[0].result == Answer::Pass);
  CHECK(r[1].result == Answer::Pass);

  // h= lists From twice: a second From above the first breaks it (over-signing).
  std::string added = "From: Mallory <m@evil.test>\r\n" + std::string(kRfc8463);
  r = verify(added, kRfc8463Keys);
  CHECK(r[0].result == Answer::Fail);
}

TEST_CASE("dkim verifier: key answers") {
  auto keys = kRfc8463Keys;
  keys.erase("test._domainkey.football.example.com");
  auto r = verify(kRfc8463, keys);
  CHECK(r[0].result == Answer::Pass);
  CHECK(r[1].result == Answer::PermError);
  CHECK(r[1].reason == "no key");

  keys["test._domainkey.football.example.com"] = "v=DKIM1; k=rsa; p=";
  r = verify(kRfc8463, keys);
  CHECK(r[1].result == Answer::PermError);
  CHECK(r[1].reason.find("revoked") != std::string::npos);

  keys["test._domainkey.football.example.com"] = kRfc8463Keys.at("brisbane._domainkey.football.example.com");
  r = verify(kRfc8463, keys);
  CHECK(r[1].result == Answer::PermError);  // k=ed25519 for a=rsa-sha256

  // A temporary failure, and no answer at all.
  Verifier v;
  v.feed(kRfc8463);
  v.finish();
  auto q = v.key_queries();
  REQUIRE(q.size() == 2);
  CHECK(q[0].second == "brisbane._domainkey.football.example.com");
  TxtResult temp;
  temp.status = DnsStatus::TempFail;
  v.set_key(q[0].first, temp);
  r = v.results();
  CHECK(r[0].result == Answer::TempError);
  CHECK(r[1].result == Answer::TempError);
  CHECK(r[1].reason == "no key answer");
}

TEST_CASE("dkim verifier: unsigned, malformed and expired signatures") {
  Verifier none;
  none.feed(kMessage);
  none.finish();
  CHECK(none.unsigned_message());
  CHECK(none.results().empty());
  CHECK(none.key_queries().empty());

  auto r = verify("DKIM-Signature: v=2; a=rsa-sha256\r\n" + std::string(kMessage), {});
  REQUIRE(r.size() == 1);
  CHECK(r[0].result == Answer::PermError);

  auto key = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(key);
  Signer s;
  s.feed(kMessage);
  s.finish();
  SignOptions o{"example.org", "sel", 1700000000, 3600};
  auto field = s.sign(*key, o);
  REQUIRE(field);
  CHECK(field->find("x=1700003600;") != std::string::npos);
  const std::map<std::string, std::string> keys = {{"sel._domainkey.example.org", record(*key)}};
  CHECK(verify(*field + std::string(kMessage), keys, Split::Whole, 1700000100)[0].result == Answer::Pass);
  r = verify(*field + std::string(kMessage), keys, Split::Whole, 1700003601);
  CHECK(r[0].result == Answer::Fail);
  CHECK(r[0].reason == "signature expired");
}

TEST_CASE("dkim signer: Ed25519 and RSA signatures verify; the body hash is shared; changes fail") {
  auto ed = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  auto rsa = crypto::PrivateKey::generate(crypto::KeyType::Rsa, 1024);
  REQUIRE(ed);
  REQUIRE(rsa);
  const std::string a = sign(kMessage, *ed, "ed");
  const std::string b = sign(kMessage, *rsa, "rsa");
  CHECK(a.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org; s=ed;"));
  CHECK(b.find("a=rsa-sha256;") != std::string::npos);
  // Over-signing: From appears in h= once more than in the message.
  CHECK(a.find("h=from:from:") != std::string::npos);
  for (const std::string& f : {a, b})
    for (std::string_view line : {std::string_view(f)}) CHECK(line.ends_with("\r\n"));
  // Lines stay within 78 columns (RFC 5322 2.1.1).
  for (const std::string& f : {a, b}) {
    std::size_t start = 0;
    while (start < f.size()) {
      std::size_t end = f.find("\r\n", start);
      CHECK(end - start <= 78);
      start = end + 2;
    }
  }
  const std::map<std::string, std::string> keys = {{"ed._domainkey.example.org", record(*ed)},
                                                   {"rsa._domainkey.example.org", record(*rsa)}};
  const std::string signed_message = a + b + std::string(kMessage);
  for (Split how : {Split::Whole, Split::Bytes, Split::Random}) {
    auto r = verify(signed_message, keys, how);
    REQUIRE(r.size() == 2);
    CHECK(r[0].result == Answer::Pass);
    CHECK(r[1].result == Answer::Pass);
  }
  // Trailing empty lines do not count (RFC 6376 3.4.4); other body changes do.
  CHECK(verify(signed_message + "\r\n\r\n", keys)[0].result == Answer::Pass);
  std::string changed = signed_message;
  changed.replace(changed.find("Shall"), 5, "Will");
  CHECK(verify(changed, keys)[0].result == Answer::Fail);
  // An added Subject, To or Reply-To breaks the over-signed fields; an added X- field does not.
  CHECK(verify("Subject: other\r\n" + signed_message, keys)[0].result == Answer::Fail);
  CHECK(verify("Reply-To: m@evil.test\r\n" + signed_message, keys)[0].result == Answer::Fail);
  CHECK(verify("X-Spam: no\r\n" + signed_message, keys)[0].result == Answer::Pass);
  // A relay adding Received above keeps it valid.
  CHECK(verify("Received: from x by y; Fri, 04 Dec 2026 12:00:01 +0000\r\n" + signed_message, keys)[1].result ==
        Answer::Pass);
}

TEST_CASE("dkim signer: From domain, messages that cannot be signed") {
  Signer s;
  s.feed(kMessage);
  s.finish();
  CHECK(s.from_domain() == "example.org");
  Signer two;
  two.feed("From: a@x.test, b@y.test\r\n\r\nbody\r\n");
  two.finish();
  CHECK_FALSE(two.from_domain());
  Signer none;
  none.feed("Subject: no from\r\n\r\nbody\r\n");
  none.finish();
  CHECK_FALSE(none.from_domain());
  auto key = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(key);
  CHECK_FALSE(none.sign(*key, {"example.org", "s", 0, 0}));
  Signer big(64);
  big.feed("From: a@example.org\r\nSubject: " + std::string(100, 'x') + "\r\n\r\nbody\r\n");
  big.finish();
  CHECK_FALSE(big.from_domain());
  CHECK_FALSE(big.sign(*key, {"example.org", "s", 0, 0}));
  // A message without a body, and one that is header only, sign and verify.
  for (std::string_view m : {std::string_view("From: a@example.org\r\n\r\n"), std::string_view("From: a@example.org\r\n")}) {
    Signer h;
    h.feed(m);
    h.finish();
    auto f = h.sign(*key, {"example.org", "s", 0, 0});
    REQUIRE(f);
    auto r = verify(*f + std::string(m), {{"s._domainkey.example.org", record(*key)}});
    REQUIRE(r.size() == 1);
    CHECK(r[0].result == Answer::Pass);
  }
}

TEST_CASE("dkim: the header splitter") {
  for (Split how : {Split::Whole, Split::Bytes, Split::Random}) {
    HeaderSplitter h;
    std::string body;
    std::string_view m = "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n";
    if (how == Split::Whole) {
      h.feed(m, body);
    } else {
      while (!m.empty()) {
        std::size_t n = how == Split::Bytes ? 1 : std::min(m.size(), std::uniform_int_distribution<std::size_t>(1, 5)(test::test_rng()));
        h.feed(m.substr(0, n), body);
        m.remove_prefix(n);
      }
    }
    h.finish();
    CHECK(h.done());
    CHECK(h.header() == "A: 1\r\nB: 2\r\n");
    CHECK(body == "body\r\n\r\n");
  }
  HeaderSplitter empty;
  std::string body;
  empty.feed("\r\nbody", body);
  CHECK(empty.done());
  CHECK(empty.header().empty());
  CHECK(body == "body");
  HeaderSplitter small(10);
  body.clear();
  small.feed("Subject: 12345678\r\n", body);
  CHECK(small.too_large());
  small.feed("\r\nbody", body);
  CHECK(body.empty());
}
