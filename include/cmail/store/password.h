// cmail/store/password.h: password hashing for users.user_authdata.
//
// New passwords are stored as argon2id PHC strings ("$argon2id$v=19$m=19456,t=2,p=1$..."), made
// with libargon2 and a random salt. cmail's legacy "<salt>:<hex sha256(salt || password)>"
// (docs/compatibility.md#users-password-format) still verifies, and password_needs_rehash() says
// when a successful login should replace the stored value. Comparisons are constant-time.
//
// Thread-safety: all functions are thread-safe. hash_password and verify_password cost tens
// of milliseconds of CPU and 19 MiB of memory each: call them off any event loop.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>

#include <string>
#include <string_view>

namespace cmail::store {

struct PasswordParams {
  // OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane).
  unsigned memory_kib = 19456;
  unsigned iterations = 2;
  unsigned parallelism = 1;
};

// An argon2id encoded string for `password`. Fails only if the system RNG or memory fails.
CMAIL_EXPORT Result<std::string> hash_password(std::string_view password,
                                               const PasswordParams& params = {});

// True when `password` matches `stored` (argon2id PHC string or legacy salt:sha256hex).
// An empty or malformed `stored` never matches.
CMAIL_EXPORT bool verify_password(std::string_view stored, std::string_view password);

// True when `stored` is legacy or uses weaker argon2 parameters than `params`.
CMAIL_EXPORT bool password_needs_rehash(std::string_view stored, const PasswordParams& params = {});

// cmail's legacy format, for tests and migrations: "<salt>:<lowercase hex sha256(salt||pw)>".
CMAIL_EXPORT std::string legacy_password_hash(std::string_view salt, std::string_view password);

}  // namespace cmail::store
