#include <cmail/store/password.h>

#include <doctest/doctest.h>

using namespace cmail;

TEST_CASE("password: argon2id hashes verify and use fresh salts") {
  auto a = store::hash_password("correct horse");
  auto b = store::hash_password("correct horse");
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(a->starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
  CHECK(*a != *b);  // random salt
  CHECK(store::verify_password(*a, "correct horse"));
  CHECK_FALSE(store::verify_password(*a, "correct horsE"));
  CHECK_FALSE(store::verify_password(*a, ""));
  CHECK_FALSE(store::password_needs_rehash(*a));
  CHECK(store::password_needs_rehash(*a, store::PasswordParams{65536, 3, 1}));
}

// The original's credential format (docs/compatibility.md#users-password-format).
TEST_CASE("password: cmail's legacy salt:sha256hex verifies") {
  // The original's example: salt piAFN50Roc, password cbdev.
  std::string stored = store::legacy_password_hash("piAFN50Roc", "cbdev");
  CHECK(stored.starts_with("piAFN50Roc:f04a0cba5a17"));
  CHECK(stored.size() == 10 + 1 + 64);
  CHECK(store::verify_password(stored, "cbdev"));
  CHECK_FALSE(store::verify_password(stored, "cbdev2"));
  CHECK(store::password_needs_rehash(stored));
  // The salt is everything before the first ':' and may be any string
  // (docs/compatibility.md#users-password-format).
  CHECK(store::verify_password(store::legacy_password_hash("cbdev", "x"), "x"));
}

TEST_CASE("password: malformed stored values never match") {
  CHECK_FALSE(store::verify_password("", ""));
  CHECK_FALSE(store::verify_password("nocolon", "nocolon"));
  CHECK_FALSE(store::verify_password("salt:", ""));
  // Uppercase hex is not what cmail wrote, and never matched
  // (docs/compatibility.md#users-password-verification).
  std::string upper = store::legacy_password_hash("s", "pw");
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  CHECK_FALSE(store::verify_password(upper, "pw"));
  CHECK_FALSE(store::verify_password("$argon2id$garbage", "pw"));
}
