// DANE in the TLS layer (cmail/net/tls.h): a client context with TLSA records checks the chain
// a real server context presents, over the memory filter both ends use (no sockets): DANE-EE
// matches the leaf whatever its names and dates (RFC 7672 3.1.1), DANE-TA needs the anchor in
// the chain, the leaf's signature up to it, valid dates below it and a name (RFC 7672 3.1.2,
// 3.2); a server that fails ends the handshake with the reason. The certificates are a P-256
// test CA, a leaf for mx.example.test (and *.mail.example.test) it signed, valid 2020-2100,
// and an expired one (2000-2001) for the same key, made with openssl.
#include <cmail/mail/dane.h>
#include <cmail/net/tls.h>

#include <doctest/doctest.h>

#include "../unit/fakes.h"
#include "net/tls_filter.h"

#include <filesystem>
#include <fstream>

using namespace cmail;

namespace {

const char* const kCa = R"(-----BEGIN CERTIFICATE-----
MIIBoDCCAUegAwIBAgIUKIUMnwk5aZA8swN0E3gaNXe0zV8wCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSY21haWwgdGVzdCBEQU5FIENBMCAXDTI2MTIwNDIyMTM0NVoY
DzIxMjYxMTEwMjIxMzQ1WjAdMRswGQYDVQQDDBJjbWFpbCB0ZXN0IERBTkUgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATSuvkfkto7za5qym7rbA+XzqpL4fD8
lPri7LZvrHRmb0TGbPFkyXlxKlNCuq9Xi69W929CFTeCr1x9D8g/cj3Eo2MwYTAd
BgNVHQ4EFgQUJvUHgfPTrV1J/9hvJ2EsmxY6iAswHwYDVR0jBBgwFoAUJvUHgfPT
rV1J/9hvJ2EsmxY6iAswDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYw
CgYIKoZIzj0EAwIDRwAwRAIgFlg8HhktKlKqaeq2TChDEtXo4cWjp4Xq/xIoj0Kr
8VQCIAgz9qW56fd8BLA10PKozGTig4Cx246c0cxuo/kD0jDm
-----END CERTIFICATE-----
)";

const char* const kLeaf = R"(-----BEGIN CERTIFICATE-----
MIIBnTCCAUKgAwIBAgICEAEwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY21haWwg
dGVzdCBEQU5FIENBMCAXDTIwMDEwMTAwMDAwMFoYDzIxMDAwMTAxMDAwMDAwWjAa
MRgwFgYDVQQDDA9teC5leGFtcGxlLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAAQrm1MtqiexIfXjn0Lq2L3ldd1SMuB4EAwshhH2QbQGTzDpmFx+46dEDDKd
Z6gR9e/q3O1pLPyF7b+dJdQypvSro3MwcTAvBgNVHREEKDAmgg9teC5leGFtcGxl
LnRlc3SCEyoubWFpbC5leGFtcGxlLnRlc3QwHQYDVR0OBBYEFIMYFdCOKMk0ZLji
qyvPu0UUGnEsMB8GA1UdIwQYMBaAFCb1B4Hz061dSf/YbydhLJsWOogLMAoGCCqG
SM49BAMCA0kAMEYCIQCNxX3Zs9GwDKXGp+BLVPJ8t5u9C75p8MA1IzMcJdDsTwIh
ANxVMgjvXYvajFEpRwKzrWd14u1tbgcvtp5oj5q82dpB
-----END CERTIFICATE-----
)";

const char* const kLeafKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQght0DuFzB4kYGPN9j
G8Cx6Sq03AlYaA90y3IwNg6MFcShRANCAAQrm1MtqiexIfXjn0Lq2L3ldd1SMuB4
EAwshhH2QbQGTzDpmFx+46dEDDKdZ6gR9e/q3O1pLPyF7b+dJdQypvSr
-----END PRIVATE KEY-----
)";

const char* const kExpired = R"(-----BEGIN CERTIFICATE-----
MIIBhDCCASugAwIBAgICEAAwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY21haWwg
dGVzdCBEQU5FIENBMB4XDTAwMDEwMTAwMDAwMFoXDTAxMDEwMTAwMDAwMFowGjEY
MBYGA1UEAwwPbXguZXhhbXBsZS50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
QgAEK5tTLaonsSH1459C6ti95XXdUjLgeBAMLIYR9kG0Bk8w6ZhcfuOnRAwynWeo
EfXv6tztaSz8he2/nSXUMqb0q6NeMFwwGgYDVR0RBBMwEYIPbXguZXhhbXBsZS50
ZXN0MB0GA1UdDgQWBBSDGBXQjijJNGS44qsrz7tFFBpxLDAfBgNVHSMEGDAWgBQm
9QeB89OtXUn/2G8nYSybFjqICzAKBggqhkjOPQQDAgNHADBEAiBRLM5uJvWcT09q
3fmKT5lsaEicTEDSto1I0LDYFl5M/AIgZzswHqGYZlzrVdFeFElGcBypC4Pdra8p
+Cik7EMukyw=
-----END CERTIFICATE-----
)";

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

const char* const kLeafSpki256 = "5464253eca52078d3a54f0fcd4fb45f9ec415e6cd42d8c57a022516c611259f4";
const char* const kCaCert256 = "1cfaa1b282991a564bc8a31e57b80422bd8a1eefbb1ca4932e1acf598796ff5f";
const char* const kExpiredCert256 = "dca50854637d4b3833a9a08324e12ab808a5b97f546e1721c19c91010c76924b";
const char* const kCaSpki256 = "c66a7b370a96d0acca648d9a924a82a0757e7ad7ffd697988165c83f3c9ae372";

struct Handshake {
  bool ok = false;
  std::string error;     // the client's, when it failed
  std::string verified;  // the record it matched
};

// A server presenting `chain` (PEM, leaf first) and a DANE client with `records` and
// reference `names`, connecting to `host`; the handshake is pumped until it ends.
Handshake handshake(const std::string& chain, const std::vector<mail::TlsaRecord>& records, const std::string& host,
                 std::vector<std::string> names = {}) {
  cmail::test::TempDir dir;
  const std::string cert = dir.file("chain.pem"), key = dir.file("key.pem");
  std::ofstream(cert) << chain;
  std::ofstream(key) << kLeafKey;
  auto server_ctx = net::TlsServerContext::load({cert, key});
  REQUIRE_MESSAGE(server_ctx.has_value(), server_ctx.error().to_string());
  net::TlsClientOptions o;
  o.verify = false;
  o.server_name = host;
  o.tlsa = records;
  o.tlsa_names = std::move(names);
  auto client_ctx = net::TlsClientContext::load(o);
  REQUIRE(client_ctx.has_value());
  auto server = net::TlsFilter::server(*server_ctx);
  auto client = net::TlsFilter::client(*client_ctx);
  for (int i = 0; i < 50 && !(client->handshake_done() && server->handshake_done()); ++i) {
    std::string to_server = client->take_ciphertext();
    if (!to_server.empty()) server->feed(to_server);
    std::string to_client = server->take_ciphertext();
    if (!to_client.empty()) client->feed(to_client);
    if (client->failed()) break;
  }
  return {client->handshake_done() && !client->failed(), client->error(), client->dane_verified()};
}

mail::TlsaRecord rec(int usage, int selector, int matching, std::string data) {
  return {static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector), static_cast<std::uint8_t>(matching),
          std::move(data)};
}

}  // namespace

TEST_CASE("tls: DANE-EE matches the leaf, with no name check and no date check (RFC 7672 3.1.1)") {
  const auto ee = rec(3, 1, 1, unhex(kLeafSpki256));
  Handshake r = handshake(std::string(kLeaf) + kCa, {ee}, "mx.example.test");
  CHECK_MESSAGE(r.ok, r.error);
  CHECK(r.verified.find("DANE-EE 3 1 1 5464253eca52078d") == 0);
  r = handshake(kLeaf, {ee}, "another.host.test");  // not its name: DANE-EE does not ask
  CHECK_MESSAGE(r.ok, r.error);
  r = handshake(kExpired, {ee}, "mx.example.test");  // expired in 2001: DANE-EE does not ask either
  CHECK_MESSAGE(r.ok, r.error);
}

TEST_CASE("tls: a certificate no TLSA record matches ends the handshake, saying so") {
  Handshake r = handshake(std::string(kLeaf) + kCa, {rec(3, 1, 1, unhex(kCaSpki256)), rec(3, 0, 1, unhex(kCaCert256))},
                       "mx.example.test");
  CHECK_FALSE(r.ok);
  CHECK(r.error == "DANE: certificate of mx.example.test matches no TLSA record");
  CHECK(r.verified.empty());
  // DANE-TA of the CA, but the server does not send the CA (RFC 7672 3.1.2: it must).
  r = handshake(kLeaf, {rec(2, 0, 1, unhex(kCaCert256))}, "mx.example.test");
  CHECK(r.error == "DANE: certificate of mx.example.test matches no TLSA record");
}

TEST_CASE("tls: DANE-TA: the anchor in the chain, the signature up to it, a name (RFC 7672 3.1.2, 3.2)") {
  const std::string chain = std::string(kLeaf) + kCa;
  for (const auto& ta : {rec(2, 0, 1, unhex(kCaCert256)), rec(2, 1, 1, unhex(kCaSpki256))}) {
    CAPTURE(mail::dane::to_string(ta, 12));
    Handshake r = handshake(chain, {ta}, "mx.example.test", mail::dane::reference_names("mx.example.test", "example.test"));
    CHECK_MESSAGE(r.ok, r.error);
    CHECK(r.verified.find("DANE-TA 2 ") == 0);
    r = handshake(chain, {ta}, "smtp.mail.example.test");  // the wildcard, and the SNI name by default
    CHECK_MESSAGE(r.ok, r.error);
    r = handshake(chain, {ta}, "mx.other.test", mail::dane::reference_names("mx.other.test", "other.test"));
    CHECK_FALSE(r.ok);
    CHECK(r.error == "DANE: certificate of mx.other.test matches a DANE-TA record, but it does not carry the name "
                     "mx.other.test, other.test");
  }
  // Below the anchor the dates count: the expired leaf fails DANE-TA, as PKIX would.
  Handshake r = handshake(std::string(kExpired) + kCa, {rec(2, 0, 1, unhex(kCaCert256))}, "mx.example.test");
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("DANE: certificate of mx.example.test matches a DANE-TA record, but its chain does not verify up "
                     "to the trust anchor") == 0);
  CHECK(r.error.find("expired") != std::string::npos);
  // A DANE-TA record of a certificate in the chain that did not sign the leaf (not even a CA).
  r = handshake(std::string(kLeaf) + kExpired, {rec(2, 0, 1, unhex(kExpiredCert256))}, "mx.example.test");
  CHECK_FALSE(r.ok);
  CHECK(r.error.find("but its chain does not verify up to the trust anchor") != std::string::npos);
}
