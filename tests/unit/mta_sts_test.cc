// mail::mta_sts: the TXT record (RFC 8461 3.1), the policy file (3.2), the fetch's response
// (3.3), MX matching (4.1), the cache steps (5.1) and what a policy does to a delivery (5).
#include <cmail/mail/mta_sts.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::mail;
using namespace cmail::mail::mta_sts;

TEST_CASE("mta-sts: the TXT record") {
  CHECK(parse_txt_record("v=STSv1; id=20160831085700Z;") == "20160831085700Z");
  CHECK(parse_txt_record("v=STSv1;id=abc") == "abc");
  CHECK(parse_txt_record("v=STSv1 ;\tid=abc ; ext_1=x:y") == "abc");
  CHECK_FALSE(parse_txt_record("v=STSv1;"));                     // no id
  CHECK_FALSE(parse_txt_record("v=STSv1; id="));
  CHECK_FALSE(parse_txt_record("v=STSv1; id=has-dash"));        // 1*32(ALPHA / DIGIT)
  CHECK_FALSE(parse_txt_record("v=STSv1; id=" + std::string(33, 'a')));
  CHECK(parse_txt_record("v=STSv1; id=" + std::string(32, 'a')));
  CHECK_FALSE(parse_txt_record("v=STSv2; id=abc"));
  CHECK_FALSE(parse_txt_record("v=stsv1; id=abc"));
  CHECK_FALSE(parse_txt_record("v=STSv1 id=abc"));
  CHECK_FALSE(parse_txt_record("v=STSv1; id=abc; bad"));
  CHECK_FALSE(parse_txt_record("v=STSv1; id=abc; -x=1"));
  // RFC 8461 3.1: records not starting with "v=STSv1;" are dropped; exactly one must remain.
  CHECK(select_txt({"v=spf1 -all", "v=STSv1; id=one"}) == "one");
  CHECK_FALSE(select_txt({"v=STSv1; id=one", "v=STSv1; id=two"}));
  CHECK_FALSE(select_txt({"v=STSv1; id=bad-id"}));
  CHECK_FALSE(select_txt({"v=STSv1 ; id=one"}));
  CHECK_FALSE(select_txt({}));
  CHECK(txt_name("example.com.") == "_mta-sts.example.com");
  CHECK(policy_host("example.com") == "mta-sts.example.com");
}

TEST_CASE("mta-sts: the policy file") {
  auto p = parse_policy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmx: backupmx.example.com.\r\n"
      "max_age: 604800\r\n");
  REQUIRE(p);
  CHECK(p->mode == Mode::Enforce);
  CHECK(p->max_age == 604800);
  CHECK(p->mx == std::vector<std::string>{"mail.example.com", "*.example.net", "backupmx.example.com"});
  // LF line ends, extra whitespace, unknown keys, repeated keys (the first counts), no final end.
  p = parse_policy("version:STSv1\nmode: testing  \nmode: enforce\nfoo_bar: anything at all\nmx: mx.example\nmax_age: 86400");
  REQUIRE(p);
  CHECK(p->mode == Mode::Testing);
  CHECK(p->max_age == 86400);
  CHECK(parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").error().message() == "line 3: invalid max_age");
  p = parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\n");
  REQUIRE(p);  // mode none needs no mx
  CHECK(p->max_age == kMaxAge);
  CHECK(parse_policy("mode: enforce\nmx: a.example\nmax_age: 1\n").error().message() == "no version");
  CHECK(parse_policy("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n").error().message() ==
        "unknown version 'STSv2'");
  CHECK(parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").error().message() == "no mx");
  CHECK(parse_policy("version: STSv1\nmode: enforce\nmx: a.example\n").error().message() == "no max_age");
  CHECK_FALSE(parse_policy("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n"));  // case-sensitive
  CHECK_FALSE(parse_policy("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n"));
  CHECK_FALSE(parse_policy("version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n"));
  CHECK_FALSE(parse_policy("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\njunk\n"));
  CHECK_FALSE(parse_policy("<html>\n"));
  CHECK_FALSE(parse_policy(""));
}

TEST_CASE("mta-sts: the HTTPS response (RFC 8461 3.3)") {
  http::Response r;
  r.ok = true;
  r.status.code = 200;
  r.fields = {{"Content-Type", "text/plain; charset=utf-8"}};
  r.body = "version: STSv1\nmode: enforce\nmx: mx.example\nmax_age: 3600\n";
  REQUIRE(check_response(r));
  r.status.code = 301;
  CHECK(check_response(r).error().message() == "HTTP status 301");  // never followed
  r.status.code = 200;
  r.fields = {{"Content-Type", "text/html"}};
  CHECK(check_response(r).error().message() == "Content-Type is not text/plain");
  r.fields = {};
  CHECK_FALSE(check_response(r));
  r.ok = false;
  r.error = "timed out";
  CHECK(check_response(r).error().message() == "timed out");
}

TEST_CASE("mta-sts: MX patterns (RFC 8461 4.1)") {
  CHECK(mx_matches("mail.example.com", "mail.example.com"));
  CHECK(mx_matches("mail.example.com", "MAIL.example.com."));
  CHECK_FALSE(mx_matches("mail.example.com", "mail2.example.com"));
  CHECK(mx_matches("*.example.com", "mx1.example.com"));
  CHECK_FALSE(mx_matches("*.example.com", "example.com"));
  CHECK_FALSE(mx_matches("*.example.com", "a.b.example.com"));
  CHECK_FALSE(mx_matches("*.example.com", ".example.com"));
  CHECK_FALSE(mx_matches("*.example.com", "xexample.com"));
  CHECK_FALSE(mx_matches("", "example.com"));
  Policy p{Mode::Enforce, {"mx.example.org", "*.mail.example.org"}, 3600};
  CHECK(host_allowed(p, "a.mail.example.org"));
  CHECK_FALSE(host_allowed(p, "evil.example.net"));
}

TEST_CASE("mta-sts: when to fetch (RFC 8461 5.1)") {
  const std::int64_t now = 1'000'000;
  TxtResult txt{DnsStatus::Ok, {"v=STSv1; id=one"}, ""};
  Cached c{"one", Policy{Mode::Enforce, {"mx.example"}, 3600}, now - 100, now + 3500};
  CHECK(next_step(std::nullopt, txt, now) == Step::Fetch);
  CHECK(next_step(c, txt, now) == Step::UseCached);
  txt.records = {"v=STSv1; id=two"};
  CHECK(next_step(c, txt, now) == Step::Fetch);  // a new id: a new policy
  Cached expired = c;
  expired.expires = now;
  txt.records = {"v=STSv1; id=one"};
  CHECK(next_step(expired, txt, now) == Step::Fetch);
  TxtResult gone{DnsStatus::NxDomain, {}, ""};
  CHECK(next_step(c, gone, now) == Step::UseCached);  // still valid
  CHECK(next_step(expired, gone, now) == Step::NoPolicy);
  CHECK(next_step(std::nullopt, gone, now) == Step::NoPolicy);
  TxtResult temp{DnsStatus::TempFail, {}, "timeout"};
  CHECK(next_step(c, temp, now) == Step::UseCached);
  CHECK(next_step(std::nullopt, temp, now) == Step::NoPolicy);
}

TEST_CASE("mta-sts: a policy on the hosts of a delivery (RFC 8461 5)") {
  const HostPlan plan{{"mx1.example.org", "evil.example.net", "mx2.example.org"}, {{25, TlsMode::Opportunistic}}, false};
  Policy p{Mode::Enforce, {"*.example.org"}, 3600};
  Applied a = apply(p, "example.org", plan);
  REQUIRE(std::holds_alternative<HostPlan>(a.plan));
  CHECK(std::get<HostPlan>(a.plan).hosts == std::vector<std::string>{"mx1.example.org", "mx2.example.org"});
  CHECK(a.verify);
  CHECK(a.notes.empty());

  p.mx = {"other.example.com"};
  a = apply(p, "example.org", plan);
  REQUIRE(std::holds_alternative<Failure>(a.plan));
  CHECK(std::get<Failure>(a.plan) == Failure{"4.7.5 MTA-STS: no MX host of example.org matches the policy", false});

  p.mode = Mode::Testing;
  a = apply(p, "example.org", plan);
  REQUIRE(std::holds_alternative<HostPlan>(a.plan));
  CHECK(std::get<HostPlan>(a.plan) == plan);
  CHECK_FALSE(a.verify);
  CHECK(a.notes.size() == 3);
  CHECK(a.notes[1] == "MTA-STS testing: MX host evil.example.net does not match the policy of example.org");

  p.mode = Mode::None;
  a = apply(p, "example.org", plan);
  CHECK(std::get<HostPlan>(a.plan) == plan);
  CHECK(a.notes.empty());
  CHECK_FALSE(a.verify);
}

TEST_CASE("mta-sts: failure reasons of enforced hosts") {
  CHECK(enforced_failure("mx.example", "TLS: X509 - Certificate verification failed") ==
        "MTA-STS: certificate not valid for mx.example (TLS: X509 - Certificate verification failed)");
  CHECK(enforced_failure("mx.example", "TLS is required but the server does not offer STARTTLS") ==
        "MTA-STS: mx.example does not offer STARTTLS (TLS is required but the server does not offer STARTTLS)");
  CHECK_FALSE(enforced_failure("mx.example", "connection refused"));
}
