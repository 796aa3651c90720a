// mail::spf: record selection and parsing (RFC 7208 4.5, 12), the macro examples of RFC 7208
// 7.4, addresses and networks.
#include <cmail/mail/spf.h>

#include <doctest/doctest.h>

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
