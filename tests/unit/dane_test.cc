// mail::dane: which records SMTP uses (RFC 7672 3.1.3, RFC 6698 2.1), when TLSA is looked up
// (RFC 7672 2.2.1, 2.2.2), what an answer asks of a connection (RFC 7672 2.2), which candidates
// are left, and the certificate checks (RFC 7672 3.1.1, 3.1.2, 3.2) over a real chain: a P-256
// test CA and a leaf for mx.example.test it signed, whose TLSA data were computed with openssl:
//   openssl x509 -outform der | sha256sum                      (selector 0)
//   openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum   (selector 1)
#include <cmail/mail/dane.h>

#include <cmail/base64.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::mail;
using namespace cmail::mail::dane;

namespace {

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

// At static initialization: no doctest assertion here (the first test case checks the sizes).
std::string der(std::string_view b64) { return base64_decode(b64).value_or(""); }

// CN=mx.example.test, subjectAltName mx.example.test and *.mail.example.test, issued by the CA.
const Certificate kLeaf{
    der("MIIBnTCCAUKgAwIBAgICEAEwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY21haWwgdGVzdCBEQU5FIENBMCAXDTIwMDEwMTAwMDAwMFoYDzIx"
        "MDAwMTAxMDAwMDAwWjAaMRgwFgYDVQQDDA9teC5leGFtcGxlLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQrm1MtqiexIfXjn0Lq"
        "2L3ldd1SMuB4EAwshhH2QbQGTzDpmFx+46dEDDKdZ6gR9e/q3O1pLPyF7b+dJdQypvSro3MwcTAvBgNVHREEKDAmgg9teC5leGFtcGxlLnRl"
        "c3SCEyoubWFpbC5leGFtcGxlLnRlc3QwHQYDVR0OBBYEFIMYFdCOKMk0ZLjiqyvPu0UUGnEsMB8GA1UdIwQYMBaAFCb1B4Hz061dSf/YbydhLJsW"
        "OogLMAoGCCqGSM49BAMCA0kAMEYCIQCNxX3Zs9GwDKXGp+BLVPJ8t5u9C75p8MA1IzMcJdDsTwIhANxVMgjvXYvajFEpRwKzrWd14u1tbgcvtp5o"
        "j5q82dpB"),
    der("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK5tTLaonsSH1459C6ti95XXdUjLgeBAMLIYR9kG0Bk8w6ZhcfuOnRAwynWeoEfXv6tztaSz8"
        "he2/nSXUMqb0qw=="),
};
// CN=cmail test DANE CA, self-signed.
const Certificate kCa{
    der("MIIBoDCCAUegAwIBAgIUKIUMnwk5aZA8swN0E3gaNXe0zV8wCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY21haWwgdGVzdCBEQU5FIENBMCAX"
        "DTI2MTIwNDIyMTM0NVoYDzIxMjYxMTEwMjIxMzQ1WjAdMRswGQYDVQQDDBJjbWFpbCB0ZXN0IERBTkUgQ0EwWTATBgcqhkjOPQIBBggqhkjO"
        "PQMBBwNCAATSuvkfkto7za5qym7rbA+XzqpL4fD8lPri7LZvrHRmb0TGbPFkyXlxKlNCuq9Xi69W929CFTeCr1x9D8g/cj3Eo2MwYTAdBgNV"
        "HQ4EFgQUJvUHgfPTrV1J/9hvJ2EsmxY6iAswHwYDVR0jBBgwFoAUJvUHgfPTrV1J/9hvJ2EsmxY6iAswDwYDVR0TAQH/BAUwAwEB/zAOBgNV"
        "HQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDRwAwRAIgFlg8HhktKlKqaeq2TChDEtXo4cWjp4Xq/xIoj0Kr8VQCIAgz9qW56fd8BLA10PKozGTig4Cx"
        "246c0cxuo/kD0jDm"),
    der("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0rr5H5LaO82uaspu62wPl86qS+Hw/JT64uy2b6x0Zm9ExmzxZMl5cSpTQrqvV4uvVvdvQhU3"
        "gq9cfQ/IP3I9xA=="),
};

const char* const kLeafCert256 = "0b0cdaf75cbbc4507e27f9d463425a28589d6493d0812166200ea2083e59e362";
const char* const kLeafCert512 =
    "d55655bd910695e3237fbb81064fe997bfbd5e8b098f75b489c5504bbe52042cf557c600e5280c5fdf96441b19fca0c4917ecde1de58874d8df09f60db78d8ac";
const char* const kLeafSpki256 = "5464253eca52078d3a54f0fcd4fb45f9ec415e6cd42d8c57a022516c611259f4";
const char* const kLeafSpki512 =
    "23a8c23d4744d67be1b3a117ff7a27c6827212d09e078c3a3fdd93386fb3914a5dd22e1a5f66d4a348fce68ffde1e30a8a8cf93001a82022d8aff81f1ee118d4";
const char* const kCaCert256 = "1cfaa1b282991a564bc8a31e57b80422bd8a1eefbb1ca4932e1acf598796ff5f";
const char* const kCaSpki256 = "c66a7b370a96d0acca648d9a924a82a0757e7ad7ffd697988165c83f3c9ae372";

TlsaRecord rec(int usage, int selector, int matching, std::string data) {
  return {static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector), static_cast<std::uint8_t>(matching),
          std::move(data)};
}

TlsaResult secure_answer(std::vector<TlsaRecord> records) {
  TlsaResult r;
  r.status = DnsStatus::Ok;
  r.records = std::move(records);
  r.secure = true;
  return r;
}

Candidate cand(std::string host, std::uint16_t port, TlsMode tls = TlsMode::Opportunistic) {
  Candidate c;
  c.host = std::move(host);
  c.address = "192.0.2.1";
  c.port = {port, tls};
  return c;
}

}  // namespace

TEST_CASE("dane: TLSA names, the presentation form, usable records") {
  REQUIRE(kLeaf.der.size() == 417);
  REQUIRE(kLeaf.spki.size() == 91);
  REQUIRE(kCa.der.size() == 420);
  CHECK(tlsa_name("MX.Example.Test.") == "_25._tcp.mx.example.test");  // RFC 6698 3
  CHECK(tlsa_name("mx.example.test", 465) == "_465._tcp.mx.example.test");
  const TlsaRecord r = rec(3, 1, 1, unhex(kLeafSpki256));
  CHECK(to_string(r) == std::string("3 1 1 ") + kLeafSpki256);
  CHECK(to_string(r, 8) == "3 1 1 5464253e...");
  CHECK(parse_tlsa(to_string(r)) == r);
  CHECK(parse_tlsa(" 2 0 1 1cfa a1b2\t82 ") == rec(2, 0, 1, unhex("1cfaa1b282")));
  for (std::string_view bad : {"", "3 1 1", "3 1 1 abc", "3 1 1 zz", "256 1 1 00", "3 1 1x 00", "3 1"})
    CHECK_MESSAGE(!parse_tlsa(bad), bad);

  CHECK(usable(rec(3, 1, 1, unhex(kLeafSpki256))));
  CHECK(usable(rec(3, 0, 2, unhex(kLeafCert512))));
  CHECK(usable(rec(2, 0, 0, kCa.der)));
  CHECK(usable(rec(2, 1, 1, unhex(kCaSpki256))));
  CHECK_FALSE(usable(rec(0, 0, 1, unhex(kCaCert256))));  // RFC 7672 3.1.3: PKIX-TA
  CHECK_FALSE(usable(rec(1, 1, 1, unhex(kLeafSpki256))));  // PKIX-EE
  CHECK_FALSE(usable(rec(4, 1, 1, unhex(kLeafSpki256))));  // an unknown usage
  CHECK_FALSE(usable(rec(3, 2, 1, unhex(kLeafSpki256))));  // an unknown selector
  CHECK_FALSE(usable(rec(3, 1, 3, unhex(kLeafSpki256))));  // an unknown matching type
  CHECK_FALSE(usable(rec(3, 1, 1, unhex(kLeafSpki256).substr(0, 20))));  // SHA-256 is 32 octets
  CHECK_FALSE(usable(rec(3, 1, 2, unhex(kLeafSpki256))));  // SHA-512 is 64
  CHECK_FALSE(usable(rec(3, 0, 0, "")));
}

TEST_CASE("dane: TLSA is asked for only below a secure MX answer and secure addresses (RFC 7672 2.2.1)") {
  AddressResult a;
  a.status = DnsStatus::Ok;
  a.addresses = {"192.0.2.1"};
  a.secure = true;
  CHECK(wants_tlsa(true, a));
  CHECK_FALSE(wants_tlsa(false, a));  // an insecure MX RRset: DANE for none of its hosts
  a.secure = false;
  CHECK_FALSE(wants_tlsa(true, a));  // insecure addresses
  a.secure = true;
  a.status = DnsStatus::NoData;
  a.addresses.clear();
  CHECK_FALSE(wants_tlsa(true, a));  // nothing to connect to anyway
}

TEST_CASE("dane: what an answer asks of the connections (RFC 7672 2.2)") {
  const std::string name = "_25._tcp.mx.example.test";
  TlsaResult fail;
  fail.status = DnsStatus::TempFail;
  fail.error = "server failure";
  HostPolicy p = host_policy(name, fail);
  CHECK(p.level == Level::Unreachable);
  CHECK(p.reason == "DANE: TLSA lookup for _25._tcp.mx.example.test failed: server failure");
  for (DnsStatus s : {DnsStatus::NoData, DnsStatus::NxDomain}) {
    TlsaResult none;
    none.status = s;
    none.secure = true;  // a secure denial: no TLSA published
    CHECK(host_policy(name, none).level == Level::None);
  }
  TlsaResult insecure = secure_answer({rec(3, 1, 1, unhex(kLeafSpki256))});
  insecure.secure = false;
  CHECK(host_policy(name, insecure).level == Level::None);  // the AD bit off: as if none were published

  const TlsaRecord ee = rec(3, 1, 1, unhex(kLeafSpki256));
  p = host_policy(name, secure_answer({rec(0, 0, 1, unhex(kCaCert256)), ee, ee, rec(3, 1, 1, "short")}));
  CHECK(p.level == Level::Authenticate);
  CHECK(p.records == std::vector<TlsaRecord>{ee});  // the unusable ones and the repeat dropped
  p = host_policy(name, secure_answer({rec(0, 0, 1, unhex(kCaCert256)), rec(1, 1, 1, unhex(kLeafSpki256))}));
  CHECK(p.level == Level::Encrypt);  // secure, but all unusable: TLS without authentication
  CHECK(p.records.empty());
  CHECK(std::string(to_string(Level::Encrypt)) == "encrypt");
}

TEST_CASE("dane: the candidates DANE leaves, and the failure when it leaves none") {
  std::map<std::string, HostPolicy> policies;
  policies[key("mx1.example.test", 25)] = {Level::Unreachable, {}, "DANE: TLSA lookup for _25._tcp.mx1.example.test failed"};
  policies[key("mx2.example.test", 25)] = {Level::Authenticate, {rec(3, 1, 1, unhex(kLeafSpki256))}, ""};
  policies[key("MX3.example.test.", 25)] = {Level::Encrypt, {}, ""};
  CHECK(key("MX3.example.test.", 25) == "mx3.example.test:25");
  std::vector<Candidate> route = {cand("mx1.example.test", 25), cand("mx2.example.test", 25),
                                  cand("mx2.example.test", 25, TlsMode::None), cand("mx3.example.test", 25),
                                  cand("mx4.example.test", 25)};
  auto got = candidates(route, policies);
  REQUIRE(std::holds_alternative<std::vector<Allowed>>(got));
  const auto& allowed = std::get<std::vector<Allowed>>(got);
  REQUIRE(allowed.size() == 3);
  CHECK(allowed[0].candidate.host == "mx2.example.test");
  CHECK(allowed[0].policy.level == Level::Authenticate);
  CHECK(allowed[1].candidate.host == "mx3.example.test");
  CHECK(allowed[1].policy.level == Level::Encrypt);
  CHECK(allowed[2].candidate.host == "mx4.example.test");  // no TLSA asked: the usual
  CHECK(allowed[2].policy.level == Level::None);

  auto none = candidates({cand("mx1.example.test", 25)}, policies);
  REQUIRE(std::holds_alternative<Failure>(none));
  CHECK(std::get<Failure>(none).record == "4.7.5 DANE: TLSA lookup for _25._tcp.mx1.example.test failed");
  CHECK_FALSE(std::get<Failure>(none).fatal);  // RFC 7672 2.2: delayed delivery
  auto plain = candidates({cand("mx2.example.test", 25, TlsMode::None)}, policies);
  REQUIRE(std::holds_alternative<Failure>(plain));
  CHECK(std::get<Failure>(plain).record.find("TLS is required at mx2.example.test") != std::string::npos);
}

TEST_CASE("dane: selectors and matching types against a real certificate (RFC 6698 2.1.2, 2.1.3)") {
  for (const TlsaRecord& r : {rec(3, 0, 0, kLeaf.der), rec(3, 0, 1, unhex(kLeafCert256)), rec(3, 0, 2, unhex(kLeafCert512)),
                              rec(3, 1, 0, kLeaf.spki), rec(3, 1, 1, unhex(kLeafSpki256)), rec(3, 1, 2, unhex(kLeafSpki512))}) {
    CAPTURE(to_string(r, 16));
    CHECK(matches(r, kLeaf));
    CHECK_FALSE(matches(r, kCa));
    TlsaRecord flipped = r;
    flipped.data[flipped.data.size() / 2] ^= 1;
    CHECK_FALSE(matches(flipped, kLeaf));
  }
  CHECK_FALSE(matches(rec(1, 1, 1, unhex(kLeafSpki256)), kLeaf));  // unusable records match nothing
  CHECK_FALSE(matches(rec(3, 1, 1, unhex(kLeafCert256)), kLeaf));  // the certificate's hash is not the key's
}

TEST_CASE("dane: DANE-EE is the leaf's alone; DANE-TA finds the anchor in the chain (RFC 7672 3.1)") {
  const std::vector<Certificate> chain = {kLeaf, kCa};
  const TlsaRecord ee = rec(3, 1, 1, unhex(kLeafSpki256));
  const TlsaRecord ta = rec(2, 0, 1, unhex(kCaCert256));
  CHECK(match_end_entity({ta, ee}, chain) == ee);
  CHECK_FALSE(match_end_entity({ta}, chain));
  CHECK_FALSE(match_end_entity({rec(3, 0, 1, unhex(kCaCert256))}, chain));  // DANE-EE of the CA: not the leaf
  CHECK_FALSE(match_end_entity({ee}, {}));
  auto anchors = match_trust_anchor({ee, ta}, chain);
  REQUIRE(anchors.size() == 1);
  CHECK(anchors[0].index == 1);
  CHECK(anchors[0].record == ta);
  anchors = match_trust_anchor({rec(2, 1, 1, unhex(kCaSpki256)), rec(2, 1, 1, unhex(kLeafSpki256))}, chain);
  REQUIRE(anchors.size() == 2);  // the leaf's own key as an anchor too, nearest first
  CHECK(anchors[0].index == 0);
  CHECK(anchors[1].index == 1);
  CHECK(match_trust_anchor({ta}, {kLeaf}).empty());  // RFC 7672 3.1.2: the server must send the anchor
}

TEST_CASE("dane: reference names and name checks for DANE-TA (RFC 7672 3.2)") {
  CHECK(reference_names("MX.example.test.", "example.test") == std::vector<std::string>{"mx.example.test", "example.test"});
  CHECK(reference_names("example.test", "EXAMPLE.test") == std::vector<std::string>{"example.test"});
  const std::vector<std::string> refs = reference_names("mx.example.test", "example.test");
  CHECK(name_matches({"mx.example.test"}, refs));
  CHECK(name_matches({"other.test", "MX.Example.Test."}, refs));
  CHECK(name_matches({"example.test"}, refs));  // the next-hop domain
  CHECK_FALSE(name_matches({"mx2.example.test"}, refs));
  CHECK_FALSE(name_matches({}, refs));
  CHECK(name_matches({"*.example.test"}, refs));  // one label
  CHECK_FALSE(name_matches({"*.example.test"}, {"a.mx.example.test"}));
  CHECK_FALSE(name_matches({"*.example.test"}, {"example.test"}));
  CHECK_FALSE(name_matches({"*.test"}, {"example.test"}));  // two labels after the wildcard at least
  CHECK_FALSE(name_matches({"m*.example.test"}, refs));     // only a whole label
  CHECK_FALSE(name_matches({"*.*.test"}, {"a.b.test"}));
  CHECK_FALSE(name_matches({"mx.example.test"}, {}));
}
