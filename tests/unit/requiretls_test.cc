// mail::requiretls: the TLS-Required header field (RFC 8689 5) found in any split, and which
// paths a REQUIRETLS message may take (RFC 8689 4.2.1).
#include "harness.h"

#include <cmail/mail/requiretls.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::mail;
using namespace cmail::mail::requiretls;

namespace {

struct Scan {
  HeaderScan s;
  explicit Scan(std::size_t max = 4096) : s(max) {}
  void receive(std::string_view b) { s.feed(b); }
};

}  // namespace

TEST_CASE("requiretls: TLS-Required: No in the header, in any split") {
  SPLIT_SUBCASES();
  Scan a;
  test::feed(a, "From: a@b.test\r\nTLS-Required:\r\n  no \r\nSubject: x\r\n\r\nTLS-Required: Yes\r\n");
  CHECK(a.s.header_done());
  CHECK(a.s.tls_optional());
  Scan b;
  test::feed(b, "From: a@b.test\r\nSubject: x\r\n\r\nTLS-Required: No\r\n");  // in the body: nothing
  CHECK(b.s.header_done());
  CHECK_FALSE(b.s.tls_optional());
  Scan c;
  test::feed(c, "tls-required: NO\nSubject: x\n\n");
  CHECK(c.s.tls_optional());
  Scan d(40);
  test::feed(d, "X-Long: " + std::string(60, 'a') + "\r\n TLS-Required: No\r\nSubject: x\r\n\r\n");
  CHECK_FALSE(d.s.tls_optional());  // a continuation of a skipped field is skipped too
}

TEST_CASE("requiretls: which paths a REQUIRETLS message may take (RFC 8689 4.2.1)") {
  CHECK_FALSE(check_path({true, true, true}, "mx.example"));
  CHECK(check_path({false, false, true}, "mx.example")->record == "5.7.10 REQUIRETLS: no TLS session with mx.example");
  CHECK(check_path({true, false, true}, "mx.example")->record ==
        "5.7.10 REQUIRETLS: the certificate of mx.example was not verified");
  auto f = check_path({true, true, false}, "mx.example");
  REQUIRE(f);
  CHECK(f->fatal);
  CHECK(f->record == "5.7.10 REQUIRETLS: the MX host mx.example is not secured by an MTA-STS policy in enforce mode");
}
