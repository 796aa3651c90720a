// mail::spf: record selection and parsing (RFC 7208 4.5, 12), the macro examples of RFC 7208
// 7.4, addresses and networks.
#include <cmail/mail/spf.h>

#include <doctest/doctest.h>

#include <deque>
#include <map>
#include <set>

using namespace cmail;
using namespace cmail::mail::spf;

namespace {

MacroContext example(std::string_view ip) {
  MacroContext c;
  c.sender = "strong-bad@email.example.com";
  c.domain = "email.example.com";
  c.ip = *parse_ip(ip);
  c.helo = "mx.example.org";
  c.receiver = "mx.example.net";
  c.timestamp = 1700000000;
  return c;
}

std::string x(std::string_view macro, std::string_view ip = "192.0.2.3", bool exp = false) {
  auto r = expand(macro, example(ip), exp);
  REQUIRE_MESSAGE(r.has_value(), macro);
  return *r;
}

}  // namespace

TEST_CASE("spf: addresses, networks and their macro forms") {
  auto v4 = parse_ip("192.0.2.3");
  REQUIRE(v4);
  CHECK_FALSE(v4->v6);
  CHECK(macro_ip(*v4) == "192.0.2.3");
  auto v6 = parse_ip("2001:db8::cb01");
  REQUIRE(v6);
  CHECK(v6->v6);
  CHECK(readable_ip(*v6) == "2001:db8::cb01");
  CHECK(readable_ip(*parse_ip("2001:0db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1");  // RFC 5952 4.2.3
  CHECK(readable_ip(*parse_ip("::")) == "::");
  CHECK(readable_ip(*parse_ip("::1")) == "::1");
  CHECK(readable_ip(*parse_ip("1::")) == "1::");
  CHECK(readable_ip(*parse_ip("1:0:2:3:4:5:6:7")) == "1:0:2:3:4:5:6:7");  // one zero group stays
  CHECK(parse_ip("::ffff:192.0.2.1")->octets[15] == 1);
  for (std::string_view bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", ":::", "1::2::3",
                               "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "::g", "1:", ":1", "::1.2.3"})
    CHECK_MESSAGE(!parse_ip(bad), bad);
  CHECK(same_network(*parse_ip("192.0.2.200"), *parse_ip("192.0.2.0"), 24));
  CHECK_FALSE(same_network(*parse_ip("192.0.3.1"), *parse_ip("192.0.2.0"), 24));
  CHECK(same_network(*parse_ip("192.0.2.7"), *parse_ip("192.0.2.0"), 29));
  CHECK_FALSE(same_network(*parse_ip("192.0.2.8"), *parse_ip("192.0.2.0"), 29));
  CHECK(same_network(*parse_ip("10.0.0.1"), *parse_ip("192.0.2.0"), 0));
  CHECK(same_network(*parse_ip("2001:db8:ffff::1"), *parse_ip("2001:db8::"), 32));
  CHECK_FALSE(same_network(*parse_ip("2001:db9::1"), *parse_ip("2001:db8::"), 32));
  CHECK_FALSE(same_network(*parse_ip("::ffff:192.0.2.1"), *parse_ip("192.0.2.1"), 0));  // families differ
}

TEST_CASE("spf: the macro examples of RFC 7208 7.4") {
  CHECK(x("%{s}") == "strong-bad@email.example.com");
  CHECK(x("%{o}") == "email.example.com");
  CHECK(x("%{d}") == "email.example.com");
  CHECK(x("%{d4}") == "email.example.com");
  CHECK(x("%{d3}") == "email.example.com");
  CHECK(x("%{d2}") == "example.com");
  CHECK(x("%{d1}") == "com");
  CHECK(x("%{dr}") == "com.example.email");
  CHECK(x("%{d2r}") == "example.email");
  CHECK(x("%{l}") == "strong-bad");
  CHECK(x("%{l-}") == "strong.bad");
  CHECK(x("%{lr}") == "strong-bad");
  CHECK(x("%{lr-}") == "bad.strong");
  CHECK(x("%{l1r-}") == "strong");
  CHECK(x("%{ir}.%{v}._spf.%{d2}") == "3.2.0.192.in-addr._spf.example.com");
  CHECK(x("%{lr-}.lp._spf.%{d2}") == "bad.strong.lp._spf.example.com");
  CHECK(x("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}") == "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  CHECK(x("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}") == "3.2.0.192.in-addr.strong.lp._spf.example.com");
  CHECK(x("%{d2}.trusted-domains.example.net") == "example.com.trusted-domains.example.net");
  CHECK(x("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01") ==
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST_CASE("spf: literals, URL-encoding, exp-only letters, long results, malformed macros") {
  CHECK(x("a%%b%_c%-d") == "a%b c%20d");
  CHECK(x("%{S}") == "strong-bad%40email.example.com");  // RFC 7208 7.3: upper case is URL-encoded
  CHECK(x("%{h}") == "mx.example.org");
  CHECK(x("%{p}") == "unknown");
  CHECK(x("%{c} via %{r} at %{t}", "2001:db8::cb01", true) == "2001:db8::cb01 via mx.example.net at 1700000000");
  CHECK_FALSE(expand("%{c}", example("192.0.2.3")).has_value());  // c, r and t only in exp=
  CHECK_FALSE(expand("%{x}", example("192.0.2.3")).has_value());
  CHECK_FALSE(expand("%{d0}", example("192.0.2.3")).has_value());
  CHECK_FALSE(expand("%{d", example("192.0.2.3")).has_value());
  CHECK_FALSE(expand("50%", example("192.0.2.3")).has_value());
  CHECK_FALSE(expand("a b", example("192.0.2.3")).has_value());  // SP only in exp= text
  MacroContext c = example("192.0.2.3");
  c.domain = std::string(200, 'a') + "." + std::string(100, 'b') + ".example";
  auto longer = expand("%{d}.x", c);
  REQUIRE(longer.has_value());
  CHECK(*longer == std::string(100, 'b') + ".example.x");  // labels dropped from the left
  MacroContext empty = example("192.0.2.3");
  empty.sender = "example.org";  // no local part given: "postmaster" (RFC 7208 4.3)
  CHECK(*expand("%{l}@%{o}", empty) == "postmaster@example.org");
}

TEST_CASE("spf: which TXT record is the SPF record (RFC 7208 4.5)") {
  CHECK(is_spf_record("v=spf1"));
  CHECK(is_spf_record("v=spf1 -all"));
  CHECK(is_spf_record("V=SPF1 -all"));
  CHECK_FALSE(is_spf_record("v=spf10 -all"));
  CHECK_FALSE(is_spf_record("v=spf1-all"));
  CHECK_FALSE(is_spf_record("spf2.0/pra -all"));
  CHECK_FALSE(is_spf_record(" v=spf1"));
}

TEST_CASE("spf: records parse into mechanisms and modifiers") {
  auto r = parse_record("v=spf1 +mx a:colo.example.com/28 -all");
  REQUIRE(r.has_value());
  REQUIRE(r->mechanisms.size() == 3);
  CHECK(r->mechanisms[0].kind == Mechanism::Kind::Mx);
  CHECK(r->mechanisms[0].qualifier == Qualifier::Pass);
  CHECK(r->mechanisms[1].domain_spec == "colo.example.com");
  CHECK(r->mechanisms[1].cidr4 == 28);
  CHECK(r->mechanisms[1].cidr6 == 128);
  CHECK(r->mechanisms[2].qualifier == Qualifier::Fail);

  auto full = parse_record("v=spf1  ip4:192.0.2.0/24 IP6:2001:db8::/32 include:_spf.example.com a/24//64 "
                           "mx:mail.example.com//96 ptr ?ptr:example.org exists:%{ir}.%{l1r+-}._spf.%{d} "
                           "redirect=_spf.example.com exp=explain._spf.%{d} future=%{d} ~all ");
  REQUIRE_MESSAGE(full.has_value(), full.error().to_string());
  const auto& m = full->mechanisms;
  REQUIRE(m.size() == 9);
  CHECK(m[0].kind == Mechanism::Kind::Ip4);
  CHECK(m[0].network == *parse_ip("192.0.2.0"));
  CHECK(m[0].cidr4 == 24);
  CHECK(m[1].kind == Mechanism::Kind::Ip6);  // names are case-insensitive
  CHECK(m[1].cidr6 == 32);
  CHECK(m[2].kind == Mechanism::Kind::Include);
  CHECK(m[3].cidr4 == 24);
  CHECK(m[3].cidr6 == 64);
  CHECK(m[3].domain_spec.empty());
  CHECK(m[4].domain_spec == "mail.example.com");
  CHECK(m[4].cidr4 == 32);
  CHECK(m[4].cidr6 == 96);
  CHECK(m[5].kind == Mechanism::Kind::Ptr);
  CHECK(m[6].qualifier == Qualifier::Neutral);
  CHECK(m[7].domain_spec == "%{ir}.%{l1r+-}._spf.%{d}");
  CHECK(m[8].qualifier == Qualifier::SoftFail);
  CHECK(full->redirect == "_spf.example.com");
  CHECK(full->explanation == "explain._spf.%{d}");
  CHECK(parse_record("v=spf1")->mechanisms.empty());
  CHECK(parse_record("v=spf1 include:%{d}")->mechanisms.size() == 1);  // ends in a macro
  CHECK(parse_record("v=spf1 a:example.com.")->mechanisms.size() == 1);
}

TEST_CASE("spf: records that are a permerror (RFC 7208 4.6, 12)") {
  for (std::string_view bad : {"v=spf1 foo", "v=spf1 -foo:bar", "v=spf1 ip4:192.0.2.0/33", "v=spf1 ip4:192.0.2.0/",
                               "v=spf1 ip6:2001:db8::/129", "v=spf1 ip4:2001:db8::1", "v=spf1 ip6:192.0.2.1",
                               "v=spf1 ip4", "v=spf1 include", "v=spf1 include:", "v=spf1 exists",
                               "v=spf1 a:foo", "v=spf1 a:example.123", "v=spf1 a:example.-com",
                               "v=spf1 all:x", "v=spf1 mx/33", "v=spf1 a//129", "v=spf1 redirect=a.com redirect=b.com",
                               "v=spf1 exp=a.com exp=b.com", "v=spf1 redirect=", "v=spf1 include:%{z}.example.com",
                               "v=spf1 exists:%{d", "v=spf1 x=%", "v=spf1 ptrx", "v=spf10 -all", "-all"})
    CHECK_MESSAGE(!parse_record(bad).has_value(), bad);
}

namespace {

// Answers from tables, always later: each answer waits in a queue until pump() (the contract
// of mail::Resolver: never inside the call).
class TableResolver : public mail::Resolver {
 public:
  std::map<std::string, std::vector<std::string>> txt_records, a_records;
  std::map<std::string, std::vector<mail::MxRecord>> mx_records;
  std::set<std::string> tempfail;  // names whose every lookup fails for now
  int lookups = 0;

  void mx(std::string_view d, std::function<void(mail::MxResult)> done) override {
    mail::MxResult r;
    r.status = status(d, mx_records);
    if (r.status == mail::DnsStatus::Ok) r.records = mx_records[std::string(d)];
    later(std::move(done), std::move(r));
  }
  void addresses(std::string_view h, std::function<void(mail::AddressResult)> done) override {
    mail::AddressResult r;
    r.status = status(h, a_records);
    if (r.status == mail::DnsStatus::Ok) r.addresses = a_records[std::string(h)];
    later(std::move(done), std::move(r));
  }
  void txt(std::string_view n, std::function<void(mail::TxtResult)> done) override {
    mail::TxtResult r;
    r.status = status(n, txt_records);
    if (r.status == mail::DnsStatus::Ok) r.records = txt_records[std::string(n)];
    later(std::move(done), std::move(r));
  }
  void pump() {
    while (!queue_.empty()) {
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      fn();
    }
  }

 private:
  template <typename Table>
  mail::DnsStatus status(std::string_view name, const Table& table) {
    ++lookups;
    const std::string n(name);
    if (tempfail.count(n)) return mail::DnsStatus::TempFail;
    if (table.count(n)) return mail::DnsStatus::Ok;
    const bool exists = txt_records.count(n) || a_records.count(n) || mx_records.count(n);
    return exists ? mail::DnsStatus::NoData : mail::DnsStatus::NxDomain;
  }
  template <typename R>
  void later(std::function<void(R)> done, R r) {
    queue_.push_back([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }
  std::deque<std::function<void()>> queue_;
};

Outcome check(TableResolver& r, std::string_view ip, std::string_view domain = "example.test",
              std::string_view sender = "user@example.test", Limits limits = {}) {
  std::optional<Outcome> got;
  check_host(r, *parse_ip(ip), domain, sender, "mx.client.test", [&](Outcome o) {
    CHECK_FALSE(got.has_value());  // once
    got = std::move(o);
  }, limits);
  r.pump();
  REQUIRE(got.has_value());
  return *got;
}

}  // namespace

TEST_CASE("spf check_host: records, none, temperror and permerror (RFC 7208 4)") {
  TableResolver r;
  r.txt_records["example.test"] = {"some other text", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"};
  CHECK(check(r, "192.0.2.10").result == Answer::Pass);
  CHECK(check(r, "::ffff:192.0.2.10").result == Answer::Pass);  // IPv4-mapped: the IPv4 address
  CHECK(check(r, "2001:db8::7").result == Answer::Pass);
  CHECK(check(r, "198.51.100.1").result == Answer::Fail);
  CHECK(check(r, "192.0.2.10", "EXAMPLE.test").result == Answer::Pass);
  CHECK(check(r, "192.0.2.10", "nowhere.test").result == Answer::None);  // NXDOMAIN
  r.txt_records["plain.test"] = {"hello"};
  CHECK(check(r, "192.0.2.10", "plain.test").result == Answer::None);  // no SPF record among them
  CHECK(check(r, "192.0.2.10", "not-a-domain").result == Answer::None);
  r.tempfail.insert("flaky.test");
  const Outcome t = check(r, "192.0.2.10", "flaky.test");
  CHECK(t.result == Answer::TempError);
  CHECK_FALSE(t.problem.empty());
  r.txt_records["two.test"] = {"v=spf1 -all", "v=spf1 +all"};
  CHECK(check(r, "192.0.2.10", "two.test").result == Answer::PermError);  // 4.5
  r.txt_records["broken.test"] = {"v=spf1 ip4:192.0.2.0/99 -all"};
  CHECK(check(r, "192.0.2.10", "broken.test").result == Answer::PermError);
  r.txt_records["empty.test"] = {"v=spf1"};
  CHECK(check(r, "192.0.2.10", "empty.test").result == Answer::Neutral);  // 4.7
  r.txt_records["soft.test"] = {"v=spf1 ?ip4:192.0.2.10 ~all"};
  CHECK(check(r, "192.0.2.10", "soft.test").result == Answer::Neutral);
  CHECK(check(r, "192.0.2.11", "soft.test").result == Answer::SoftFail);
}

TEST_CASE("spf check_host: a, mx, exists, include and redirect") {
  TableResolver r;
  r.txt_records["example.test"] = {"v=spf1 a mx/24 include:_spf.partner.test exists:%{ir}.%{l}.allow.test -all"};
  r.a_records["example.test"] = {"2001:db8::1", "192.0.2.1"};
  r.mx_records["example.test"] = {{10, "mx1.example.test"}, {20, "mx2.example.test"}};
  r.a_records["mx1.example.test"] = {"198.51.100.7"};
  r.tempfail.insert("mx2.example.test");  // one MX host failing is not the record's failure
  r.txt_records["_spf.partner.test"] = {"v=spf1 ip4:203.0.113.0/24 ~all"};
  r.a_records["9.0.0.10.user.allow.test"] = {"127.0.0.2"};
  CHECK(check(r, "192.0.2.1").result == Answer::Pass);                // a
  CHECK(check(r, "2001:db8::1").result == Answer::Pass);              // a, AAAA
  CHECK(check(r, "198.51.100.99").result == Answer::Pass);            // mx/24
  CHECK(check(r, "203.0.113.5").result == Answer::Pass);              // include: pass
  CHECK(check(r, "10.0.0.9").result == Answer::Pass);                 // exists with macros
  CHECK(check(r, "10.0.0.8").result == Answer::Fail);                 // include's softfail: no match
  r.txt_records["redirected.test"] = {"v=spf1 redirect=_spf.partner.test"};
  CHECK(check(r, "203.0.113.5", "redirected.test").result == Answer::Pass);
  CHECK(check(r, "10.0.0.8", "redirected.test").result == Answer::SoftFail);  // the target's result
  r.txt_records["dangling.test"] = {"v=spf1 redirect=nothing.test"};
  CHECK(check(r, "10.0.0.8", "dangling.test").result == Answer::PermError);  // 6.1: none is permerror
  r.txt_records["badinclude.test"] = {"v=spf1 include:nothing.test -all"};
  CHECK(check(r, "10.0.0.8", "badinclude.test").result == Answer::PermError);  // 5.2
  r.txt_records["nullmx.test"] = {"v=spf1 mx -all"};
  r.mx_records["nullmx.test"] = {{0, ""}};
  CHECK(check(r, "192.0.2.1", "nullmx.test").result == Answer::Fail);
  // An empty MAIL FROM: the sender is postmaster@<HELO> (RFC 7208 2.4, 4.3).
  r.txt_records["helo.test"] = {"v=spf1 exists:%{l}.%{o}.check.test -all"};
  r.a_records["postmaster.mx.client.test.check.test"] = {"127.0.0.2"};
  CHECK(check(r, "10.0.0.8", "helo.test", "").result == Answer::Pass);
}

TEST_CASE("spf check_host: the lookup limits of RFC 7208 4.6.4") {
  TableResolver r;
  // A chain of includes: the 11th DNS term is one too many.
  for (int i = 0; i < 12; ++i)
    r.txt_records["c" + std::to_string(i) + ".test"] = {"v=spf1 include:c" + std::to_string(i + 1) + ".test -all"};
  r.txt_records["c12.test"] = {"v=spf1 +all"};
  const Outcome deep = check(r, "192.0.2.1", "c0.test");
  CHECK(deep.result == Answer::PermError);
  CHECK(deep.problem.find("DNS lookups") != std::string::npos);
  r.txt_records["c3.test"] = {"v=spf1 +all"};  // within the limit now
  CHECK(check(r, "192.0.2.1", "c0.test").result == Answer::Pass);
  // Void lookups: the third answer without records is permerror.
  r.txt_records["voids.test"] = {"v=spf1 a:n1.test a:n2.test a:n3.test -all"};
  CHECK(check(r, "192.0.2.1", "voids.test").result == Answer::PermError);
  r.txt_records["twovoids.test"] = {"v=spf1 a:n1.test a:n2.test -all"};
  CHECK(check(r, "192.0.2.1", "twovoids.test").result == Answer::Fail);
  // An mx mechanism with more than 10 hosts.
  r.txt_records["manymx.test"] = {"v=spf1 mx -all"};
  for (int i = 0; i < 11; ++i) r.mx_records["manymx.test"].push_back({10, "h" + std::to_string(i) + ".test"});
  CHECK(check(r, "192.0.2.1", "manymx.test").result == Answer::PermError);
  // A temporary failure of a mechanism's lookup is temperror.
  r.txt_records["tempa.test"] = {"v=spf1 a:flaky.test -all"};
  r.tempfail.insert("flaky.test");
  CHECK(check(r, "192.0.2.1", "tempa.test").result == Answer::TempError);
}

TEST_CASE("spf check_host: exp= explains a fail (RFC 7208 6.2)") {
  TableResolver r;
  r.txt_records["example.test"] = {"v=spf1 ip4:192.0.2.1 -all exp=explain._spf.%{d}"};
  r.txt_records["explain._spf.example.test"] = {"%{i} is not one of %{d}'s designated mail servers."};
  const Outcome f = check(r, "192.0.2.99");
  CHECK(f.result == Answer::Fail);
  CHECK(f.explanation == "192.0.2.99 is not one of example.test's designated mail servers.");
  CHECK(check(r, "192.0.2.1").explanation.empty());
  r.txt_records["explain._spf.example.test"] = {"one", "two"};  // not exactly one record: none
  const Outcome none = check(r, "192.0.2.99");
  CHECK(none.result == Answer::Fail);
  CHECK(none.explanation.empty());
}
