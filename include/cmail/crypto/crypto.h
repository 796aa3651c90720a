// cmail/crypto/crypto.h: the hashes, MACs, key derivation and randomness the protocols need:
// SHA-256 (FIPS 180-4) for DKIM (RFC 6376 3.7) and SCRAM (RFC 7677), HMAC-SHA-256 (RFC 2104)
// and PBKDF2 (RFC 8018 5.2) for SCRAM's Hi(), and the system's random generator.
//
// The crypto layer is pure computation, no I/O: the core (proto, smtp, mail) may use it. Its
// implementation uses Nettle and mbedTLS; no type of theirs is visible here. Digests and keys are raw octet
// strings in std::string.
//
// Thread-safety: the free functions are thread-safe; a Sha256 object is used by one thread.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cmail::crypto {

inline constexpr std::size_t kSha256Size = 32;

// SHA-256 of a stream of pieces.
class CMAIL_EXPORT Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);

  void update(std::string_view bytes);
  // The 32-octet digest; the object starts over afterwards.
  std::string finish();

 private:
  alignas(8) unsigned char state_[128];  // a Nettle sha256_ctx (checked in the .cc)
};

// The 32-octet SHA-256 digest of `bytes`.
CMAIL_EXPORT std::string sha256(std::string_view bytes);
// HMAC-SHA-256 (RFC 2104) of `message` under `key`: 32 octets.
CMAIL_EXPORT std::string hmac_sha256(std::string_view key, std::string_view message);
// PBKDF2 with HMAC-SHA-256 (RFC 8018 5.2): `length` octets. SCRAM's Hi() is this with
// length 32 (RFC 5802 2.2).
CMAIL_EXPORT std::string pbkdf2_sha256(std::string_view password, std::string_view salt,
                                       unsigned iterations, std::size_t length = kSha256Size);

// `n` octets from the kernel's generator (getrandom(2)). Fails only when the system does.
CMAIL_EXPORT Result<std::string> random_bytes(std::size_t n);

// Equal sizes and contents, in time that depends on the size only.
CMAIL_EXPORT bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace cmail::crypto
