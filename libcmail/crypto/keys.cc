// RSA keys over mbedTLS's pk module, Ed25519 keys over Nettle.
#include <cmail/crypto/keys.h>

#include <cmail/crypto/crypto.h>
#include <cmail/base64.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <nettle/eddsa.h>

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
  mbedtls_pk_context pk;  // RSA
  unsigned char ed[kEd25519Size];

  explicit Impl(KeyType t) : type(t) { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }
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
  if (mbedtls_pk_get_type(&impl->pk) != MBEDTLS_PK_RSA) return Status::invalid_argument("not an RSA public key");
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
  return mbedtls_pk_verify(&impl_->pk, MBEDTLS_MD_SHA256, d, digest.size(), s, signature.size()) == 0;
}

// ---- private keys ----

struct PrivateKey::Impl {
  KeyType type;
  mbedtls_pk_context pk;  // RSA
  unsigned char seed[kEd25519Size];
  unsigned char pub[kEd25519Size];

  explicit Impl(KeyType t) : type(t) { mbedtls_pk_init(&pk); }
  ~Impl() {
    mbedtls_pk_free(&pk);  // zeroizes the RSA context
    mbedtls_platform_zeroize(seed, sizeof seed);
  }
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
  std::string sig(MBEDTLS_PK_SIGNATURE_MAX_SIZE, '\0');
  std::size_t n = 0;
  // RSASSA-PKCS1-v1_5 (the pk module's default padding for RSA), blinded with system randomness.
  int rc = mbedtls_pk_sign(&impl_->pk, MBEDTLS_MD_SHA256, d, digest.size(), reinterpret_cast<unsigned char*>(sig.data()),
                           &n, system_random, nullptr);
  if (rc != 0) return mbed_error("RSA signature", rc);
  sig.resize(n);
  return sig;
}

}  // namespace cmail::crypto
