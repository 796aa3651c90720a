// cmail/crypto/keys.h: signing keys for DKIM (RFC 6376 3.3): RSA (RSASSA-PKCS1-v1_5 with
// SHA-256, RFC 8017 8.2) and Ed25519 (PureEdDSA, RFC 8032 5.1; as DKIM uses it, RFC 8463).
//
// Both operations take a SHA-256 digest: RSA signs it inside a DigestInfo, Ed25519 signs the 32
// digest octets as its message, which is exactly what DKIM's rsa-sha256 and ed25519-sha256 mean.
//
// Text forms:
//   - a private key is PEM: an RSA key as mbedTLS writes it ("RSA PRIVATE KEY", PKCS#1), an
//     Ed25519 key as PKCS#8 ("PRIVATE KEY", RFC 8410 7); both forms, and PKCS#8 RSA, are read;
//   - a public key is the octets DKIM publishes in p= (RFC 6376 3.6.1): an RSA key's DER
//     SubjectPublicKeyInfo (an RSAPublicKey is read too), an Ed25519 key's 32 raw octets
//     (RFC 8463 4.2).
//
// mbedTLS reads, makes and writes RSA keys; Nettle signs and checks with them (GMP arithmetic)
// and does Ed25519 (mbedTLS 2.28 has no EdDSA; docs/dependencies.md). Private key material is
// wiped when an object dies (GMP's copies of RSA numbers are freed, not wiped).
//
// Thread-safety: a const key is safe to use from several threads at once.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>

#include <memory>
#include <string>
#include <string_view>

namespace cmail::crypto {

enum class KeyType { Rsa, Ed25519 };

CMAIL_EXPORT const char* to_string(KeyType t);  // "rsa", "ed25519"

class CMAIL_EXPORT PublicKey {
 public:
  // `bytes` as in p= of a DKIM key record (decoded from base64).
  static Result<PublicKey> parse(KeyType type, std::string_view bytes);

  PublicKey(PublicKey&&) noexcept;
  PublicKey& operator=(PublicKey&&) noexcept;
  ~PublicKey();

  KeyType type() const;
  unsigned bits() const;  // the RSA modulus size; 256 for Ed25519
  // The p= octets (RSA: DER SubjectPublicKeyInfo).
  std::string bytes() const;
  // True when `signature` is this key's signature of the SHA-256 `digest`.
  bool verify(std::string_view digest, std::string_view signature) const;

  struct Impl;

 private:
  friend class PrivateKey;
  explicit PublicKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class CMAIL_EXPORT PrivateKey {
 public:
  // A new key: RSA of `bits` (at least 1024; DKIM signers use 2048, RFC 8301 3.2) or Ed25519
  // (`bits` ignored).
  static Result<PrivateKey> generate(KeyType type, unsigned bits = 2048);
  // A PEM private key (see the text forms above).
  static Result<PrivateKey> parse(std::string_view pem);

  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;
  ~PrivateKey();

  KeyType type() const;
  unsigned bits() const;
  std::string pem() const;  // secret: never log it
  PublicKey public_key() const;
  // The signature of the SHA-256 `digest` (RSA: the modulus size in octets; Ed25519: 64).
  Result<std::string> sign(std::string_view digest) const;

  struct Impl;

 private:
  explicit PrivateKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cmail::crypto
