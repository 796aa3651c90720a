// Keys: RSA parsed, generated and written by mbedTLS's pk module and used (signatures, their
// checks) through Nettle, whose GMP arithmetic is a third faster here; Ed25519 over Nettle.
#include <cmail/crypto/keys.h>

#include <cmail/crypto/crypto.h>
#include <cmail/base64.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <nettle/bignum.h>
#include <nettle/eddsa.h>
#include <nettle/rsa.h>

#include <cstring>
#include <vector>

namespace cmail::crypto {

namespace {

constexpr std::size_t kEd25519Size = 32;       // key and seed octets (RFC 8032 5.1.5)
constexpr std::size_t kEd25519SigSize = 64;    // RFC 8032 5.1.6
// The DER of a PKCS#8 OneAsymmetricKey holding an Ed25519 seed (RFC 8410 7, 10.3) up to the
// seed: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
constexpr unsigned char kEd25519Pkcs8[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                           0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
// The DER of a SubjectPublicKeyInfo for RSA up to its BIT STRING's contents (RFC 8017 A.1,
// RFC 5280 4.1): used to read a bare RSAPublicKey, which some DKIM records publish.
constexpr unsigned char kRsaAlgorithm[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                           0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

int system_random(void*, unsigned char* out, std::size_t n) {
  auto r = random_bytes(n);
  if (!r) return MBEDTLS_ERR_PK_ALLOC_FAILED;
  std::memcpy(out, r->data(), n);
  mbedtls_platform_zeroize(r->data(), n);
  return 0;
}

void nettle_random(void*, std::size_t n, std::uint8_t* out) {
  auto r = random_bytes(n);
  if (!r) std::abort();  // the kernel's generator failed: no safe signature can be made
  std::memcpy(out, r->data(), n);
  mbedtls_platform_zeroize(r->data(), n);
}

// An mbedTLS number as a GMP one.
void to_mpz(const mbedtls_mpi& from, mpz_t to) {
  std::vector<unsigned char> buf(mbedtls_mpi_size(&from) + 1);
  mbedtls_mpi_write_binary(&from, buf.data(), buf.size());
  nettle_mpz_set_str_256_u(to, buf.size(), buf.data());
  mbedtls_platform_zeroize(buf.data(), buf.size());
}

// Nettle's view of an RSA key held by mbedTLS (RFC 8017 3.1, 3.2: n, e; d, p, q and the CRT
// values). False when the key's numbers do not make a usable key.
bool nettle_public(mbedtls_pk_context& pk, rsa_public_key& pub) {
  mbedtls_mpi n, e;
  mbedtls_mpi_init(&n);
  mbedtls_mpi_init(&e);
  bool ok = mbedtls_rsa_export(mbedtls_pk_rsa(pk), &n, nullptr, nullptr, nullptr, &e) == 0;
  if (ok) {
    to_mpz(n, pub.n);
    to_mpz(e, pub.e);
    ok = rsa_public_key_prepare(&pub) == 1;
  }
  mbedtls_mpi_free(&n);
  mbedtls_mpi_free(&e);
  return ok;
}

bool nettle_private(mbedtls_pk_context& pk, rsa_private_key& key) {
  mbedtls_mpi p, q, d, dp, dq, qp;
  for (mbedtls_mpi* m : {&p, &q, &d, &dp, &dq, &qp}) mbedtls_mpi_init(m);
  bool ok = mbedtls_rsa_export(mbedtls_pk_rsa(pk), nullptr, &p, &q, &d, nullptr) == 0 &&
            mbedtls_rsa_export_crt(mbedtls_pk_rsa(pk), &dp, &dq, &qp) == 0;
  if (ok) {
    to_mpz(d, key.d);
    to_mpz(p, key.p);
    to_mpz(q, key.q);
    to_mpz(dp, key.a);  // d mod (p-1)
    to_mpz(dq, key.b);  // d mod (q-1)
    to_mpz(qp, key.c);  // q^-1 mod p
    ok = rsa_private_key_prepare(&key) == 1;
  }
  for (mbedtls_mpi* m : {&p, &q, &d, &dp, &dq, &qp}) mbedtls_mpi_free(m);  // zeroizes
  return ok;
}

Status mbed_error(const char* what, int rc) {
  char buf[128];
  mbedtls_strerror(rc, buf, sizeof buf);
  return Status::invalid_argument(std::string(what) + ": " + buf);
}

// DER length octets (X.690 8.1.3).
void der_length(std::string& out, std::size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<char>(n));
    return;
  }
  std::string digits;
  for (; n; n >>= 8) digits.insert(digits.begin(), static_cast<char>(n & 0xff));
  out.push_back(static_cast<char>(0x80 | digits.size()));
  out += digits;
}

std::string der(unsigned char tag, std::string_view contents) {
  std::string out(1, static_cast<char>(tag));
  der_length(out, contents.size());
  out += contents;
  return out;
}

std::string spki_of_rsa_public_key(std::string_view rsa_public_key) {
  std::string bits(1, '\0');  // no unused bits
  bits += rsa_public_key;
  std::string body(reinterpret_cast<const char*>(kRsaAlgorithm), sizeof kRsaAlgorithm);
  body += der(0x03, bits);
  return der(0x30, body);
}

// RFC 7468 2: base64 lines of 64 characters between the labels.
std::string pem_encode(std::string_view label, std::string_view der_bytes) {
  std::string b64 = base64_encode(der_bytes);
  std::string out = "-----BEGIN " + std::string(label) + "-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  out += "-----END " + std::string(label) + "-----\n";
  mbedtls_platform_zeroize(b64.data(), b64.size());
  return out;
}

// The DER inside "-----BEGIN label-----" ... "-----END label-----", or nullopt.
std::optional<std::string> pem_decode(std::string_view pem, std::string_view label) {
  std::string begin = "-----BEGIN " + std::string(label) + "-----";
  std::string end = "-----END " + std::string(label) + "-----";
  auto b = pem.find(begin);
  if (b == std::string_view::npos) return std::nullopt;
  auto e = pem.find(end, b + begin.size());
  if (e == std::string_view::npos) return std::nullopt;
  std::string b64;
  for (char c : pem.substr(b + begin.size(), e - b - begin.size()))
    if (c != '\r' && c != '\n' && c != ' ' && c != '\t') b64.push_back(c);
  auto out = base64_decode(b64);
  mbedtls_platform_zeroize(b64.data(), b64.size());
  return out;
}

}  // namespace

const char* to_string(KeyType t) { return t == KeyType::Ed25519 ? "ed25519" : "rsa"; }

// ---- public keys ----

struct PublicKey::Impl {
  KeyType type;
  mbedtls_pk_context pk;  // RSA: parsed and written here
  rsa_public_key rsa;     // RSA: verified with this
  unsigned char ed[kEd25519Size];

  explicit Impl(KeyType t) : type(t) {
    mbedtls_pk_init(&pk);
    rsa_public_key_init(&rsa);
  }
  ~Impl() {
    mbedtls_pk_free(&pk);
    rsa_public_key_clear(&rsa);
  }
};

PublicKey::PublicKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PublicKey::PublicKey(PublicKey&&) noexcept = default;
PublicKey& PublicKey::operator=(PublicKey&&) noexcept = default;
PublicKey::~PublicKey() = default;

Result<PublicKey> PublicKey::parse(KeyType type, std::string_view bytes) {
  auto impl = std::make_unique<Impl>(type);
  if (type == KeyType::Ed25519) {
    if (bytes.size() != kEd25519Size) return Status::invalid_argument("an Ed25519 public key is 32 octets");
    std::memcpy(impl->ed, bytes.data(), kEd25519Size);
    return PublicKey(std::move(impl));
  }
  auto parse_der = [&](std::string_view der_bytes) {
    mbedtls_pk_free(&impl->pk);
    mbedtls_pk_init(&impl->pk);
    return mbedtls_pk_parse_public_key(&impl->pk, reinterpret_cast<const unsigned char*>(der_bytes.data()),
                                       der_bytes.size());
  };
  int rc = parse_der(bytes);
  if (rc != 0 && !bytes.empty() && bytes[0] == 0x30) rc = parse_der(spki_of_rsa_public_key(bytes));
  if (rc != 0) return mbed_error("not an RSA public key", rc);
  if (mbedtls_pk_get_type(&impl->pk) != MBEDTLS_PK_RSA || !nettle_public(impl->pk, impl->rsa))
    return Status::invalid_argument("not an RSA public key");
  return PublicKey(std::move(impl));
}

KeyType PublicKey::type() const { return impl_->type; }

unsigned PublicKey::bits() const {
  if (impl_->type == KeyType::Ed25519) return 256;
  return static_cast<unsigned>(mbedtls_pk_get_bitlen(&impl_->pk));
}

std::string PublicKey::bytes() const {
  if (impl_->type == KeyType::Ed25519) return std::string(reinterpret_cast<const char*>(impl_->ed), kEd25519Size);
  std::vector<unsigned char> buf(4096);
  int n = mbedtls_pk_write_pubkey_der(&impl_->pk, buf.data(), buf.size());  // written at the end
  if (n <= 0) return {};
  return std::string(reinterpret_cast<const char*>(buf.data() + buf.size() - n), static_cast<std::size_t>(n));
}

bool PublicKey::verify(std::string_view digest, std::string_view signature) const {
  if (digest.size() != kSha256Size) return false;
  const auto* d = reinterpret_cast<const unsigned char*>(digest.data());
  const auto* s = reinterpret_cast<const unsigned char*>(signature.data());
  if (impl_->type == KeyType::Ed25519)
    return signature.size() == kEd25519SigSize && ed25519_sha512_verify(impl_->ed, digest.size(), d, s) == 1;
  // RFC 8017 8.2.2 step 1: the signature is exactly k octets.
  if (signature.size() != impl_->rsa.size) return false;
  mpz_t sig;
  mpz_init(sig);
  nettle_mpz_set_str_256_u(sig, signature.size(), s);
  const bool ok = rsa_sha256_verify_digest(&impl_->rsa, d, sig) == 1;
  mpz_clear(sig);
  return ok;
}

// ---- private keys ----

struct PrivateKey::Impl {
  KeyType type;
  mbedtls_pk_context pk;  // RSA: parsed, generated and written here
  rsa_public_key rsa_pub;  // RSA: signed with these
  rsa_private_key rsa;
  unsigned char seed[kEd25519Size];
  unsigned char pub[kEd25519Size];

  explicit Impl(KeyType t) : type(t) {
    mbedtls_pk_init(&pk);
    rsa_public_key_init(&rsa_pub);
    rsa_private_key_init(&rsa);
  }
  ~Impl() {
    mbedtls_pk_free(&pk);  // zeroizes the RSA context
    rsa_public_key_clear(&rsa_pub);
    rsa_private_key_clear(&rsa);  // GMP frees the limbs (not wiped: GMP has no such call)
    mbedtls_platform_zeroize(seed, sizeof seed);
  }
  bool ready() { return nettle_public(pk, rsa_pub) && nettle_private(pk, rsa); }
};

PrivateKey::PrivateKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;
PrivateKey::~PrivateKey() = default;

Result<PrivateKey> PrivateKey::generate(KeyType type, unsigned bits) {
  auto impl = std::make_unique<Impl>(type);
  if (type == KeyType::Ed25519) {
    auto seed = random_bytes(kEd25519Size);  // RFC 8032 5.1.5: the private key is 32 random octets
    if (!seed) return seed.error();
    std::memcpy(impl->seed, seed->data(), kEd25519Size);
    mbedtls_platform_zeroize(seed->data(), seed->size());
    ed25519_sha512_public_key(impl->pub, impl->seed);
    return PrivateKey(std::move(impl));
  }
  if (bits < 1024 || bits > 8192) return Status::invalid_argument("RSA keys have 1024 to 8192 bits");
  int rc = mbedtls_pk_setup(&impl->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
  if (rc == 0) rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(impl->pk), system_random, nullptr, bits, 65537);
  if (rc != 0) return mbed_error("RSA key generation", rc);
  if (!impl->ready()) return Status::internal("RSA key generation made an unusable key");
  return PrivateKey(std::move(impl));
}

Result<PrivateKey> PrivateKey::parse(std::string_view pem) {
  if (auto der_bytes = pem_decode(pem, "PRIVATE KEY");
      der_bytes && der_bytes->size() == sizeof kEd25519Pkcs8 + kEd25519Size &&
      std::memcmp(der_bytes->data(), kEd25519Pkcs8, sizeof kEd25519Pkcs8) == 0) {
    auto impl = std::make_unique<Impl>(KeyType::Ed25519);
    std::memcpy(impl->seed, der_bytes->data() + sizeof kEd25519Pkcs8, kEd25519Size);
    mbedtls_platform_zeroize(der_bytes->data(), der_bytes->size());
    ed25519_sha512_public_key(impl->pub, impl->seed);
    return PrivateKey(std::move(impl));
  }
  auto impl = std::make_unique<Impl>(KeyType::Rsa);
  std::string text(pem);  // mbedTLS wants PEM NUL-terminated, the NUL counted in the length
  int rc = mbedtls_pk_parse_key(&impl->pk, reinterpret_cast<const unsigned char*>(text.c_str()), text.size() + 1,
                                nullptr, 0);
  mbedtls_platform_zeroize(text.data(), text.size());
  if (rc != 0) return mbed_error("not a private key", rc);
  if (mbedtls_pk_get_type(&impl->pk) != MBEDTLS_PK_RSA)
    return Status::invalid_argument("not an RSA or Ed25519 private key");
  if (!impl->ready()) return Status::invalid_argument("the RSA key's numbers do not make a key");
  return PrivateKey(std::move(impl));
}

KeyType PrivateKey::type() const { return impl_->type; }

unsigned PrivateKey::bits() const {
  if (impl_->type == KeyType::Ed25519) return 256;
  return static_cast<unsigned>(mbedtls_pk_get_bitlen(&impl_->pk));
}

std::string PrivateKey::pem() const {
  if (impl_->type == KeyType::Ed25519) {
    std::string der_bytes(reinterpret_cast<const char*>(kEd25519Pkcs8), sizeof kEd25519Pkcs8);
    der_bytes.append(reinterpret_cast<const char*>(impl_->seed), kEd25519Size);
    std::string out = pem_encode("PRIVATE KEY", der_bytes);
    mbedtls_platform_zeroize(der_bytes.data(), der_bytes.size());
    return out;
  }
  std::vector<unsigned char> buf(16000);
  if (mbedtls_pk_write_key_pem(&impl_->pk, buf.data(), buf.size()) != 0) return {};
  std::string out(reinterpret_cast<const char*>(buf.data()));
  mbedtls_platform_zeroize(buf.data(), buf.size());
  return out;
}

PublicKey PrivateKey::public_key() const {
  auto impl = std::make_unique<PublicKey::Impl>(impl_->type);
  if (impl_->type == KeyType::Ed25519) {
    std::memcpy(impl->ed, impl_->pub, kEd25519Size);
  } else {
    std::vector<unsigned char> buf(4096);
    int n = mbedtls_pk_write_pubkey_der(&impl_->pk, buf.data(), buf.size());
    if (n > 0) mbedtls_pk_parse_public_key(&impl->pk, buf.data() + buf.size() - n, static_cast<std::size_t>(n));
    nettle_public(impl->pk, impl->rsa);
  }
  return PublicKey(std::move(impl));
}

Result<std::string> PrivateKey::sign(std::string_view digest) const {
  if (digest.size() != kSha256Size) return Status::invalid_argument("a SHA-256 digest is 32 octets");
  const auto* d = reinterpret_cast<const unsigned char*>(digest.data());
  if (impl_->type == KeyType::Ed25519) {
    std::string sig(kEd25519SigSize, '\0');
    ed25519_sha512_sign(impl_->pub, impl_->seed, digest.size(), d, reinterpret_cast<unsigned char*>(sig.data()));
    return sig;
  }
  // RSASSA-PKCS1-v1_5 (RFC 8017 8.2.1), blinded and checked against faults (Nettle's _tr).
  mpz_t s;
  mpz_init(s);
  const bool ok = rsa_sha256_sign_digest_tr(&impl_->rsa_pub, &impl_->rsa, nullptr, nettle_random, d, s) == 1;
  std::string sig(impl_->rsa_pub.size, '\0');  // k octets (RFC 8017 5.2.1 I2OSP)
  if (ok) nettle_mpz_get_str_256(sig.size(), reinterpret_cast<std::uint8_t*>(sig.data()), s);
  mpz_clear(s);
  if (!ok) return Status::internal("RSA signature failed");
  return sig;
}

}  // namespace cmail::crypto
