// Hashes, HMAC, PBKDF2 and randomness over mbedTLS and getrandom(2).
#include <cmail/crypto/crypto.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace cmail::crypto {

namespace {

static_assert(sizeof(mbedtls_sha256_context) <= 128, "Sha256::state_ is too small");
static_assert(alignof(mbedtls_sha256_context) <= 8, "Sha256::state_ is not aligned enough");

mbedtls_sha256_context* ctx(unsigned char* state) { return reinterpret_cast<mbedtls_sha256_context*>(state); }

const unsigned char* octets(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

Sha256::Sha256() {
  new (state_) mbedtls_sha256_context;
  mbedtls_sha256_init(ctx(state_));
  mbedtls_sha256_starts_ret(ctx(state_), 0);  // 0: SHA-256, not SHA-224
}

Sha256::~Sha256() { mbedtls_sha256_free(ctx(state_)); }

Sha256::Sha256(const Sha256& other) {
  new (state_) mbedtls_sha256_context;
  mbedtls_sha256_init(ctx(state_));
  mbedtls_sha256_clone(ctx(state_), reinterpret_cast<const mbedtls_sha256_context*>(other.state_));
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other)
    mbedtls_sha256_clone(ctx(state_), reinterpret_cast<const mbedtls_sha256_context*>(other.state_));
  return *this;
}

void Sha256::update(std::string_view bytes) { mbedtls_sha256_update_ret(ctx(state_), octets(bytes), bytes.size()); }

std::string Sha256::finish() {
  std::string out(kSha256Size, '\0');
  mbedtls_sha256_finish_ret(ctx(state_), reinterpret_cast<unsigned char*>(out.data()));
  mbedtls_sha256_starts_ret(ctx(state_), 0);
  return out;
}

std::string sha256(std::string_view bytes) {
  std::string out(kSha256Size, '\0');
  mbedtls_sha256_ret(octets(bytes), bytes.size(), reinterpret_cast<unsigned char*>(out.data()), 0);
  return out;
}

std::string sha512(std::string_view bytes) {
  std::string out(kSha512Size, '\0');
  mbedtls_sha512_ret(octets(bytes), bytes.size(), reinterpret_cast<unsigned char*>(out.data()), 0);  // 0: not SHA-384
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  std::string out(kSha256Size, '\0');
  mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), octets(key), key.size(), octets(message),
                  message.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations,
                          std::size_t length) {
  std::string out(length, '\0');
  mbedtls_md_context_t md;
  mbedtls_md_init(&md);
  int rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
  if (rc == 0)
    rc = mbedtls_pkcs5_pbkdf2_hmac(&md, octets(password), password.size(), octets(salt), salt.size(), iterations,
                                   static_cast<std::uint32_t>(length), reinterpret_cast<unsigned char*>(out.data()));
  mbedtls_md_free(&md);
  if (rc != 0) throw std::bad_alloc();  // the only failure for valid arguments: no memory
  return out;
}

Result<std::string> random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::io_error(std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(r);
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace cmail::crypto
