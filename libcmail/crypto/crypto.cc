// Hashes, HMAC and PBKDF2 over Nettle (its SHA-256 uses the CPU's SHA extensions where there
// are some: four times mbedTLS's speed here), randomness from getrandom(2).
#include <cmail/crypto/crypto.h>

#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <nettle/sha2.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace cmail::crypto {

namespace {

static_assert(sizeof(sha256_ctx) <= 128, "Sha256::state_ is too small");
static_assert(alignof(sha256_ctx) <= 8, "Sha256::state_ is not aligned enough");

sha256_ctx* ctx(unsigned char* state) { return reinterpret_cast<sha256_ctx*>(state); }

const std::uint8_t* octets(std::string_view s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

}  // namespace

Sha256::Sha256() {
  new (state_) sha256_ctx;
  sha256_init(ctx(state_));
}

Sha256::~Sha256() = default;  // a plain struct

Sha256::Sha256(const Sha256& other) { std::memcpy(state_, other.state_, sizeof(sha256_ctx)); }

Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other) std::memcpy(state_, other.state_, sizeof(sha256_ctx));
  return *this;
}

void Sha256::update(std::string_view bytes) { sha256_update(ctx(state_), bytes.size(), octets(bytes)); }

std::string Sha256::finish() {
  std::string out(kSha256Size, '\0');
  sha256_digest(ctx(state_), kSha256Size, reinterpret_cast<std::uint8_t*>(out.data()));  // and starts over
  return out;
}

std::string sha256(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  hmac_sha256_ctx c;
  hmac_sha256_set_key(&c, key.size(), octets(key));
  hmac_sha256_update(&c, message.size(), octets(message));
  std::string out(kSha256Size, '\0');
  hmac_sha256_digest(&c, kSha256Size, reinterpret_cast<std::uint8_t*>(out.data()));
  return out;
}

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations,
                          std::size_t length) {
  std::string out(length, '\0');
  pbkdf2_hmac_sha256(password.size(), octets(password), iterations, salt.size(), octets(salt), length,
                     reinterpret_cast<std::uint8_t*>(out.data()));
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
