// mail::dmarc: records (RFC 7489 6.3, 6.6.3), Punycode (RFC 3492), the Public Suffix List and
// the organizational domain (3.2), alignment (3.1) and evaluation (6.6).
#include <cmail/mail/dmarc.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::mail::dmarc;

namespace {

constexpr std::string_view kList =
    "// a comment\n"
    "com\n"
    "uk\n"
    "co.uk\n"
    "\n"
    "*.ck\n"
    "!www.ck\n"
    "jp\n"
    "*.kawasaki.jp\n"
    "!city.kawasaki.jp\n"
    "cn\n"
    "\xe5\x85\xac\xe5\x8f\xb8.cn\n"  // 公司.cn
    "blogspot.com  // a private rule, with a comment after it\n";

}  // namespace

TEST_CASE("dmarc: which TXT record is the policy, and its tags") {
  CHECK(is_dmarc_record("v=DMARC1; p=none"));
  CHECK(is_dmarc_record("v=DMARC1;p=none"));
  CHECK(is_dmarc_record("V=dmarc1; p=none"));
  CHECK_FALSE(is_dmarc_record("v=DMARC10; p=none"));
  CHECK_FALSE(is_dmarc_record("v=spf1 -all"));
  auto r = parse_record(
      "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m; "
      "pct=25; sp=reject; adkim=s; ri=3600; fo=1");
  REQUIRE(r.has_value());
  CHECK(r->policy == Policy::Quarantine);
  CHECK(r->subdomain_policy == Policy::Reject);
  CHECK(r->strict_dkim);
  CHECK_FALSE(r->strict_spf);
  CHECK(r->percent == 25);
  CHECK(r->interval == 3600);
  CHECK(r->failure_options == "1");
  CHECK(r->aggregate_uris ==
        std::vector<std::string>{"mailto:dmarc-feedback@example.com", "mailto:tld-test@thirdparty.example.net!10m"});
  // Bad values of known tags are ignored, their defaults stand (RFC 7489 6.3).
  auto lax = parse_record("v=DMARC1; p=reject; pct=150; adkim=x; sp=maybe; ri=-1; future=1");
  REQUIRE(lax.has_value());
  CHECK(lax->percent == 100);
  CHECK_FALSE(lax->strict_dkim);
  CHECK_FALSE(lax->subdomain_policy.has_value());
  CHECK(lax->interval == 86400);
  // No valid p=: none when rua= is valid (6.6.3), else no record.
  auto rua_only = parse_record("v=DMARC1; p=bogus; rua=mailto:r@example.com");
  REQUIRE(rua_only.has_value());
  CHECK(rua_only->policy == Policy::None);
  CHECK_FALSE(parse_record("v=DMARC1; pct=50").has_value());
  CHECK_FALSE(parse_record("p=none; v=DMARC1").has_value());  // v= first
  CHECK_FALSE(parse_record("v=DMARC2; p=none").has_value());
  CHECK_FALSE(parse_record("v=DMARC1; p=none; p=reject").has_value());  // a tag twice
}

TEST_CASE("dmarc: A-labels (RFC 3492)") {
  CHECK(a_label("example") == "example");
  CHECK(a_label("b\xc3\xbc""cher") == "xn--bcher-kva");
  CHECK(a_label("m\xc3\xbcnchen") == "xn--mnchen-3ya");
  CHECK(a_label("\xe5\x85\xac\xe5\x8f\xb8") == "xn--55qx5d");
  CHECK(a_label("\xd1\x80\xd1\x84") == "xn--p1ai");  // рф
  CHECK_FALSE(a_label("\xff\xfe").has_value());
  CHECK_FALSE(a_label("\xc1\x81").has_value());          // an overlong "A"
  CHECK_FALSE(a_label("\xed\xa0\x80").has_value());     // a surrogate
}

TEST_CASE("dmarc: the organizational domain through the Public Suffix List (RFC 7489 3.2)") {
  const PublicSuffixList psl = PublicSuffixList::parse(kList);
  CHECK(psl.size() == 11);
  CHECK(psl.organizational_domain("mail.example.com") == "example.com");
  CHECK(psl.organizational_domain("Mail.Example.COM.") == "example.com");
  CHECK(psl.organizational_domain("a.b.example.co.uk") == "example.co.uk");
  CHECK(psl.organizational_domain("foo.bar.ck") == "foo.bar.ck");  // *.ck: bar.ck is a suffix
  CHECK(psl.organizational_domain("www.ck") == "www.ck");          // !www.ck: ck is the suffix
  CHECK(psl.organizational_domain("a.www.ck") == "www.ck");
  CHECK(psl.organizational_domain("x.city.kawasaki.jp") == "city.kawasaki.jp");
  CHECK(psl.organizational_domain("x.y.other.kawasaki.jp") == "y.other.kawasaki.jp");
  CHECK(psl.organizational_domain("shop.example.xn--55qx5d.cn") == "example.xn--55qx5d.cn");
  CHECK(psl.organizational_domain("me.blogspot.com") == "me.blogspot.com");
  CHECK(psl.organizational_domain("a.b.example") == "b.example");  // the implicit "*" rule
  CHECK(psl.organizational_domain("com") == "com");
  CHECK(psl.public_suffix("a.b.example.co.uk") == "co.uk");
}

TEST_CASE("dmarc: Debian's public suffix list loads and answers") {
  auto psl = PublicSuffixList::load();
  REQUIRE_MESSAGE(psl.has_value(), "Debian's publicsuffix package: ", psl.error().to_string());
  CHECK(psl->size() > 5000);
  CHECK(psl->organizational_domain("mail.example.co.uk") == "example.co.uk");
  CHECK(psl->organizational_domain("a.b.example.com") == "example.com");
  CHECK(psl->organizational_domain("shop.example.xn--55qx5d.cn") == "example.xn--55qx5d.cn");
  CHECK(PublicSuffixList::load("/nonexistent/list.dat").error().code() == Status::Code::IoError);
}

TEST_CASE("dmarc: alignment and evaluation (RFC 7489 3.1, 4.2, 6.6)") {
  const PublicSuffixList psl = PublicSuffixList::parse(kList);
  CHECK(aligned("mail.example.com", "example.com", false, psl));
  CHECK_FALSE(aligned("mail.example.com", "example.com", true, psl));
  CHECK(aligned("EXAMPLE.com", "example.com.", true, psl));
  CHECK_FALSE(aligned("example.org", "example.com", false, psl));
  CHECK_FALSE(aligned("a.co.uk", "b.co.uk", false, psl));  // two organizations under one suffix

  Record rec = *parse_record("v=DMARC1; p=reject; sp=quarantine; pct=50");
  Evidence e;
  e.from_domain = "example.com";
  e.spf_pass = true;
  e.spf_domain = "bounces.example.com";
  Outcome o = evaluate(rec, "example.com", e, psl, 10);
  CHECK(o.pass);
  CHECK(o.spf_aligned);
  CHECK_FALSE(o.dkim_aligned);
  e.spf_domain = "mailer.example.net";  // SPF passed, but for another domain
  e.dkim_pass = {"example.net", "mail.example.com"};
  o = evaluate(rec, "example.com", e, psl, 10);
  CHECK(o.pass);
  CHECK(o.dkim_aligned);
  CHECK_FALSE(o.spf_aligned);
  rec.strict_dkim = true;
  o = evaluate(rec, "example.com", e, psl, 10);
  CHECK_FALSE(o.pass);  // strict: mail.example.com is not example.com
  CHECK(o.policy == Policy::Reject);
  CHECK(o.applies);     // 10 < pct=50
  CHECK_FALSE(evaluate(rec, "example.com", e, psl, 70).applies);
  e.from_domain = "news.example.com";  // the organizational domain's record, for a subdomain
  CHECK(evaluate(rec, "example.com", e, psl, 10).policy == Policy::Quarantine);
}
