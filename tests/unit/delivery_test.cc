// Outbound delivery policy: portprio, remote specs, retry schedule, failure records, bounces.
#include <cmail/mail/delivery.h>
#include <cmail/mail/fields.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::mail;

// The original's portprio syntax (docs/compatibility.md#dispatchd-portprio).
TEST_CASE("delivery: portprio, with errors instead of silent skips") {
  auto p = parse_portprio("465@tls 25@STARTTLS 25  587@plain");
  REQUIRE(p);
  CHECK(*p == std::vector<PortChoice>{{465, TlsMode::Implicit}, {25, TlsMode::StartTls},
                                      {25, TlsMode::Opportunistic}, {587, TlsMode::None}});
  for (const char* bad : {"", "  ", "0", "70000", "25@bogus", "x@tls", "25x"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_portprio(bad));
  }
}

// The original's handoff specs, and ours (docs/compatibility.md#dispatchd-handoff-specs).
TEST_CASE("delivery: handoff remote specs") {
  struct Case {
    const char* spec;
    const char* user;
    const char* password;
    const char* host;
    int port;  // 0 = none
    TlsMode tls;
  };
  const Case cases[] = {
      {"smart.example", nullptr, nullptr, "smart.example", 0, TlsMode::Opportunistic},
      {"smart.example:2600", nullptr, nullptr, "smart.example", 2600, TlsMode::Opportunistic},
      {"smart.example:465/TLS", nullptr, nullptr, "smart.example", 465, TlsMode::Implicit},
      {"smart.example:587/starttls", nullptr, nullptr, "smart.example", 587, TlsMode::StartTls},
      {"usr:secret@smart.example:587/starttls", "usr", "secret", "smart.example", 587, TlsMode::StartTls},
      {"usr:p@ss:w@smart.example", "usr", "p@ss:w", "smart.example", 0, TlsMode::Opportunistic},
      {"[2001:db8::1]:25", nullptr, nullptr, "2001:db8::1", 25, TlsMode::Opportunistic},
      {"[IPv6:::1]", nullptr, nullptr, "::1", 0, TlsMode::Opportunistic},
      {"127.0.0.1:2600/plain", nullptr, nullptr, "127.0.0.1", 2600, TlsMode::None},
  };
  for (const Case& c : cases) {
    CAPTURE(c.spec);
    auto r = parse_remote(c.spec);
    REQUIRE(r);
    CHECK(r->host == c.host);
    CHECK(r->credentials.has_value() == (c.user != nullptr));
    if (c.user) {
      CHECK(r->credentials->authcid == c.user);
      CHECK(r->credentials->password == c.password);
    }
    CHECK(r->port.has_value() == (c.port != 0));
    if (c.port) {
      CHECK(r->port->port == c.port);
      CHECK(r->port->tls == c.tls);
    }
  }
  // Nothing secret in messages: the password is hidden.
  CHECK(redact_remote("usr:secret@smart.example:587") == "usr:***@smart.example:587");
  CHECK(redact_remote("smart.example") == "smart.example");
  auto bad = parse_remote("usr:secret@smart.example:25x");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("secret") == std::string::npos);
  CHECK(bad.error().message().find("usr:***@smart.example:25x") != std::string::npos);
  // The original skipped these silently and kept the mail queued forever
  // (docs/compatibility.md#dispatchd-stuck-entries).
  for (const char* bad : {"", "host:2600x", "host:0x19", "host:2600/bogus", "@host", "user@", "[::1", "[::1]x", "h:"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_remote(bad));
  }
}

TEST_CASE("delivery: retries back off and end") {
  RetryPolicy p;
  p.interval = 60;
  p.max_interval = 300;
  p.retries = 4;
  p.max_age = 1000;
  CHECK(next_attempt(p, 1, 1000) == 1060);
  CHECK(next_attempt(p, 2, 1000) == 1120);
  CHECK(next_attempt(p, 3, 1000) == 1240);
  CHECK(next_attempt(p, 4, 1000) == 1300);   // capped
  CHECK(next_attempt(p, 60, 1000) == 1300);  // no overflow
  CHECK_FALSE(given_up(p, 3, 0, 999));
  CHECK(given_up(p, 4, 0, 10));      // retries used up
  CHECK(given_up(p, 1, 0, 1000));    // too old
  p.max_age = 0;
  CHECK_FALSE(given_up(p, 1, 0, 1 << 30));
}

TEST_CASE("delivery: failure records keep cmail's reply line and name the server") {
  auto reply = smtp::reply(550, {5, 1, 1}, "No such user");
  std::string rec = failure_from_reply(reply, "mx1.example.test");
  CHECK(rec == "550 5.1.1 No such user (from mx1.example.test)");
  ParsedFailure f = parse_failure(rec, true);
  CHECK(f.status == smtp::EnhancedCode{5, 1, 1});
  CHECK(f.diagnostic == std::optional<std::string>("550 5.1.1 No such user"));
  CHECK(f.remote == std::optional<std::string>("mx1.example.test"));
  CHECK(f.text == "No such user");

  f = parse_failure(failure_local({5, 1, 2}, "nowhere.test does not exist"), true);
  CHECK(f.status == smtp::EnhancedCode{5, 1, 2});
  CHECK_FALSE(f.diagnostic);
  CHECK(f.text == "nowhere.test does not exist");

  f = parse_failure("452 try later", false);  // a reply without enhanced code
  CHECK(f.status == smtp::EnhancedCode{4, 0, 0});
  CHECK(f.diagnostic == std::optional<std::string>("452 try later"));
  CHECK_FALSE(f.remote);

  f = parse_failure("Failed to reach any MX", false);  // the original's own reasons
  CHECK(f.status == smtp::EnhancedCode{4, 0, 0});
  CHECK(f.text == "Failed to reach any MX");
  CHECK(parse_failure("Failed to resolve recipient domain", true).status == smtp::EnhancedCode{5, 0, 0});
}

TEST_CASE("delivery: NOTIFY and recipient domains") {
  CHECK(wants_failure_report(std::nullopt));
  CHECK(wants_failure_report("SUCCESS,FAILURE"));
  CHECK_FALSE(wants_failure_report("NEVER"));
  CHECK_FALSE(wants_failure_report("DELAY"));
  CHECK(recipient_domain("\"a@b\"@Example.TEST") == "example.test");
  CHECK(recipient_domain("postmaster") == "");
}

TEST_CASE("delivery: a bounce is an RFC 3464 report with the original headers") {
  Bounce b;
  b.reporting_mta = "mx.local.test";
  b.to = "alice@local.test";
  b.queue_id = "Q1234";
  b.arrival = 1700000000;
  b.now = 1700003600;
  b.envid = "env-1";
  b.message_id = "abcdef";
  BouncedRecipient r;
  r.address = "bob@remote.test";
  r.orcpt = "rfc822;bob@remote.test";
  r.last = parse_failure("550 5.1.1 No such user (from mx1.remote.test)", true);
  r.last_attempt = 1700003000;
  r.attempts = 1;
  b.recipients.push_back(r);
  BouncedRecipient r2;
  r2.address = "carol@slow.test";
  r2.last = parse_failure(failure_local({4, 4, 1}, "connection refused by every MX"), false);
  r2.expired = true;
  r2.attempts = 5;
  b.recipients.push_back(r2);
  const std::string original = "Subject: hello\r\nFrom: alice@local.test\r\n\r\nsecret body\r\n";
  std::string m = compose_bounce(b, original);
  CAPTURE(m);
  CHECK(m.starts_with("From: Mail Delivery System <MAILER-DAEMON@mx.local.test>\r\nTo: <alice@local.test>\r\n"));
  CHECK(m.find("Auto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(m.find("Content-Type: multipart/report; report-type=delivery-status;") != std::string::npos);
  CHECK(m.find("Reporting-MTA: dns; mx.local.test\r\n") != std::string::npos);
  CHECK(m.find("Original-Envelope-Id: env-1\r\n") != std::string::npos);
  CHECK(m.find("Original-Recipient: rfc822;bob@remote.test\r\nFinal-Recipient: rfc822; bob@remote.test\r\n"
               "Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx1.remote.test\r\n"
               "Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n") != std::string::npos);
  CHECK(m.find("Final-Recipient: rfc822; carol@slow.test\r\nAction: failed\r\nStatus: 4.4.1\r\n") != std::string::npos);
  CHECK(m.find("gave up after 5 attempts") != std::string::npos);
  CHECK(m.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n") != std::string::npos);
  CHECK(m.find("secret body") == std::string::npos);  // headers only unless RET=FULL
  CHECK(m.ends_with("--\r\n"));
  b.return_full = true;
  m = compose_bounce(b, original);
  CHECK(m.find("Content-Type: message/rfc822\r\n\r\nSubject: hello") != std::string::npos);
  CHECK(m.find("secret body") != std::string::npos);
  CHECK(compose_bounce(b, original, 10).find("secret body") == std::string::npos);  // too big to return
  // A success report for a relay that does not do DSN (RFC 3461 5.2.2): nothing returned.
  Bounce ok = b;
  ok.recipients.resize(1);
  ok.recipients[0].action = "relayed";
  ok.recipients[0].last = parse_failure("250 2.0.0 queued (from mx1.remote.test)", false);
  m = compose_bounce(ok, original);
  CHECK(m.find("Subject: Successful Mail Delivery Report\r\n") != std::string::npos);
  CHECK(m.find("Action: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx1.remote.test\r\n") != std::string::npos);
  CHECK(m.find("secret body") == std::string::npos);  // RET=FULL returns nothing on success
  CHECK(wants_success_report("SUCCESS,FAILURE"));
  CHECK_FALSE(wants_success_report(std::nullopt));
  CHECK_FALSE(wants_success_report("FAILURE"));
}

TEST_CASE("rfc5322_date: RFC 5322 3.3 dates in UTC, each second its own") {
  // 2026-12-01 23:42:38 UTC was a Tuesday; the same second twice, then the next, then earlier.
  CHECK(cmail::mail::rfc5322_date(1796168558) == "Tue, 1 Dec 2026 23:42:38 +0000");
  CHECK(cmail::mail::rfc5322_date(1796168558) == "Tue, 1 Dec 2026 23:42:38 +0000");
  CHECK(cmail::mail::rfc5322_date(1796168559) == "Tue, 1 Dec 2026 23:42:39 +0000");
  CHECK(cmail::mail::rfc5322_date(0) == "Thu, 1 Jan 1970 00:00:00 +0000");
  CHECK(cmail::mail::rfc5322_date(1796168559 + 86400 * 31) == "Fri, 1 Jan 2027 23:42:39 +0000");
}
