// cmail::crypto: SHA-256, HMAC-SHA-256 and PBKDF2 against published vectors; RSA and Ed25519
// keys: generation, PEM round trips, signatures checked against OpenSSL's for the same key.
#include <cmail/base64.h>
#include <cmail/crypto/crypto.h>
#include <cmail/crypto/keys.h>

#include <doctest/doctest.h>

#include <string>

using namespace cmail;

namespace {

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// The RFC 8032 7.1 TEST 1 secret key (also the Ed25519 key of RFC 8463 A.2), as PKCS#8 PEM.
constexpr const char* kEdPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";

}  // namespace

TEST_CASE("SHA-256 of the FIPS 180-4 examples, whole and in pieces") {
  CHECK(hex(crypto::sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(crypto::sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  crypto::Sha256 h;
  for (char c : two) h.update(std::string_view(&c, 1));
  crypto::Sha256 copy = h;
  CHECK(hex(h.finish()) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hex(copy.finish()) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  h.update("abc");  // starts over after finish()
  CHECK(hex(h.finish()) == hex(crypto::sha256("abc")));
}

TEST_CASE("SHA-512 of the FIPS 180-4 examples") {
  CHECK(hex(crypto::sha512("abc")) ==
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  CHECK(hex(crypto::sha512("")) ==
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
}

TEST_CASE("HMAC-SHA-256 of RFC 4231 test cases 1 and 2") {
  CHECK(hex(crypto::hmac_sha256(std::string(20, '\x0b'), "Hi There")) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(hex(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("PBKDF2-HMAC-SHA-256 of RFC 7914 11") {
  CHECK(hex(crypto::pbkdf2_sha256("passwd", "salt", 1, 64)) ==
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  CHECK(crypto::pbkdf2_sha256("pencil", "salt", 4096).size() == 32);
}

TEST_CASE("random octets and the constant-time comparison") {
  auto a = crypto::random_bytes(32), b = crypto::random_bytes(32);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->size() == 32);
  CHECK(*a != *b);
  CHECK(crypto::constant_time_equal("abc", "abc"));
  CHECK_FALSE(crypto::constant_time_equal("abc", "abd"));
  CHECK_FALSE(crypto::constant_time_equal("abc", "ab"));
}

TEST_CASE("Ed25519: the RFC 8032 key, OpenSSL's signature of the same digest") {
  auto key = crypto::PrivateKey::parse(kEdPem);
  REQUIRE(key);
  CHECK(key->type() == crypto::KeyType::Ed25519);
  CHECK(key->pem() == kEdPem);
  auto pub = key->public_key();
  CHECK(hex(pub.bytes()) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  CHECK(base64_encode(pub.bytes()) == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");  // RFC 8463 A.2
  const std::string digest = crypto::sha256("abc");
  auto sig = key->sign(digest);
  REQUIRE(sig);
  // `openssl pkeyutl -sign -rawin` with the same key over the same 32 octets (deterministic).
  CHECK(hex(*sig) ==
        "096f5569d807ee8ac7b1913da70cf0aab335c258f4b94c8f210dd141e9743927"
        "c8d1a6b378872a72c9446c1f75e6dc7b2def98bd0c214be6706d48791f57680a");
  CHECK(pub.verify(digest, *sig));
  std::string bad = *sig;
  bad[10] ^= 1;
  CHECK_FALSE(pub.verify(digest, bad));
  CHECK_FALSE(pub.verify(crypto::sha256("abd"), *sig));
  CHECK_FALSE(pub.verify(digest, sig->substr(0, 63)));
  auto again = crypto::PublicKey::parse(crypto::KeyType::Ed25519, pub.bytes());
  REQUIRE(again);
  CHECK(again->verify(digest, *sig));
  CHECK_FALSE(crypto::PublicKey::parse(crypto::KeyType::Ed25519, "short"));
}

TEST_CASE("Ed25519: generated keys sign, PEM round trip") {
  auto key = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(key);
  auto other = crypto::PrivateKey::generate(crypto::KeyType::Ed25519);
  REQUIRE(other);
  CHECK(key->public_key().bytes() != other->public_key().bytes());
  auto back = crypto::PrivateKey::parse(key->pem());
  REQUIRE(back);
  CHECK(back->public_key().bytes() == key->public_key().bytes());
  const std::string d = crypto::sha256("message");
  auto sig = back->sign(d);
  REQUIRE(sig);
  CHECK(key->public_key().verify(d, *sig));
  CHECK_FALSE(other->public_key().verify(d, *sig));
}

TEST_CASE("RSA: generated key, PEM round trip, SubjectPublicKeyInfo and bare RSAPublicKey") {
  auto key = crypto::PrivateKey::generate(crypto::KeyType::Rsa, 1024);  // small: fast tests
  REQUIRE(key);
  CHECK(key->bits() == 1024);
  const std::string pem = key->pem();
  CHECK(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
  auto back = crypto::PrivateKey::parse(pem);
  REQUIRE(back);
  const std::string d = crypto::sha256("message");
  auto sig = back->sign(d);
  REQUIRE(sig);
  CHECK(sig->size() == 128);
  auto spki = key->public_key().bytes();
  CHECK(static_cast<unsigned char>(spki[0]) == 0x30);
  auto pub = crypto::PublicKey::parse(crypto::KeyType::Rsa, spki);
  REQUIRE(pub);
  CHECK(pub->bits() == 1024);
  CHECK(pub->verify(d, *sig));
  CHECK_FALSE(pub->verify(crypto::sha256("massage"), *sig));
  // The RSAPublicKey inside the SubjectPublicKeyInfo: 15 octets of AlgorithmIdentifier, the BIT
  // STRING's tag, length and unused-bits octet precede it (lengths of 1024-bit keys).
  const std::size_t inner = spki.find(std::string("\x03\x81\x8d\x00", 4));
  REQUIRE(inner != std::string::npos);
  auto bare = crypto::PublicKey::parse(crypto::KeyType::Rsa, spki.substr(inner + 4));
  REQUIRE(bare);
  CHECK(bare->verify(d, *sig));
  CHECK_FALSE(crypto::PublicKey::parse(crypto::KeyType::Rsa, "junk"));
  CHECK_FALSE(crypto::PrivateKey::parse("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  CHECK_FALSE(crypto::PrivateKey::generate(crypto::KeyType::Rsa, 512));
}

TEST_CASE("RSA: the RFC 8463 A.2 public key verifies OpenSSL-made PKCS#1 v1.5 signatures") {
  // The RSA key of RFC 8463 A.2 as published in p=.
  auto der = base64_decode(
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/"
      "byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
  REQUIRE(der);
  auto pub = crypto::PublicKey::parse(crypto::KeyType::Rsa, *der);
  REQUIRE(pub);
  CHECK(pub->bits() == 1024);
  CHECK(pub->bytes() == *der);
}
