// Password hashing: argon2id for new values, cmail's salted SHA-256 still accepted.
#include <cmail/store/password.h>

#include <argon2.h>
#include <mbedtls/sha256.h>
#include <sys/random.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace cmail::store {

namespace {

constexpr std::size_t kSaltLen = 16;
constexpr std::size_t kHashLen = 32;

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool is_argon2(std::string_view stored) { return stored.starts_with("$argon2"); }

// Reads m=, t=, p= from "$argon2id$v=19$m=19456,t=2,p=1$salt$hash".
bool argon2_params(std::string_view stored, PasswordParams& out) {
  unsigned m = 0, t = 0, p = 0;
  std::string s(stored);
  auto pos = s.find("$m=");
  if (pos == std::string::npos) return false;
  if (std::sscanf(s.c_str() + pos, "$m=%u,t=%u,p=%u", &m, &t, &p) != 3) return false;
  out = {m, t, p};
  return true;
}

}  // namespace

Result<std::string> hash_password(std::string_view password, const PasswordParams& params) {
  unsigned char salt[kSaltLen];
  if (getrandom(salt, sizeof salt, 0) != static_cast<ssize_t>(sizeof salt))
    return Status::io_error("getrandom failed");
  std::size_t len = argon2_encodedlen(params.iterations, params.memory_kib, params.parallelism,
                                      kSaltLen, kHashLen, Argon2_id);
  std::vector<char> encoded(len);
  int rc = argon2id_hash_encoded(params.iterations, params.memory_kib, params.parallelism,
                                 password.data(), password.size(), salt, sizeof salt, kHashLen,
                                 encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return Status::internal(std::string("argon2: ") + argon2_error_message(rc));
  return std::string(encoded.data());
}

std::string legacy_password_hash(std::string_view salt, std::string_view password) {
  // Lowercase hex SHA-256 of salt || password (docs/compatibility.md#users-password-format).
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  mbedtls_sha256_starts_ret(&ctx, 0);
  mbedtls_sha256_update_ret(&ctx, reinterpret_cast<const unsigned char*>(salt.data()), salt.size());
  mbedtls_sha256_update_ret(&ctx, reinterpret_cast<const unsigned char*>(password.data()),
                            password.size());
  unsigned char digest[32];
  mbedtls_sha256_finish_ret(&ctx, digest);
  mbedtls_sha256_free(&ctx);
  static const char kHex[] = "0123456789abcdef";
  std::string out(salt);
  out += ':';
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool verify_password(std::string_view stored, std::string_view password) {
  if (stored.empty()) return false;
  if (is_argon2(stored)) {
    std::string enc(stored);
    argon2_type type = stored.starts_with("$argon2id$") ? Argon2_id
                       : stored.starts_with("$argon2i$") ? Argon2_i
                       : stored.starts_with("$argon2d$") ? Argon2_d
                                                         : Argon2_id;
    return argon2_verify(enc.c_str(), password.data(), password.size(), type) == ARGON2_OK;
  }
  // The salt is everything before the first ':' (docs/compatibility.md#users-password-format).
  auto colon = stored.find(':');
  if (colon == std::string_view::npos) return false;
  return constant_time_equal(legacy_password_hash(stored.substr(0, colon), password), stored);
}

bool password_needs_rehash(std::string_view stored, const PasswordParams& params) {
  if (!stored.starts_with("$argon2id$")) return true;
  PasswordParams have;
  if (!argon2_params(stored, have)) return true;
  return have.memory_kib < params.memory_kib || have.iterations < params.iterations ||
         have.parallelism < params.parallelism;
}

}  // namespace cmail::store
