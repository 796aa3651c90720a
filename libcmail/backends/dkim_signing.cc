// DKIM signing with the dkim_keys table; see dkim_signing.h.
#include <cmail/backends/dkim_signing.h>

#include <cmail/crypto/crypto.h>
#include <cmail/crypto/keys.h>
#include <cmail/proto/ascii.h>

#include <memory>
#include <mutex>
#include <unordered_map>

namespace cmail::backends {

namespace {

// Parsed keys by the SHA-256 of their PEM: reading an RSA key costs more than half a signature.
// Bounded (a full cache starts over); a changed or deleted row simply stops being asked for.
std::shared_ptr<const crypto::PrivateKey> parsed_key(const std::string& pem) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const crypto::PrivateKey>> cache;
  const std::string id = crypto::sha256(pem);
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(id); it != cache.end()) return it->second;
  }
  auto key = crypto::PrivateKey::parse(pem);
  if (!key) return nullptr;
  auto shared = std::make_shared<const crypto::PrivateKey>(std::move(*key));
  std::lock_guard lock(mu);
  if (cache.size() >= 64) cache.clear();
  cache.emplace(id, shared);
  return shared;
}

}  // namespace

std::vector<store::DkimKey> signing_keys(store::DirectoryLookups& dir, std::string_view domain) {
  std::string d = proto::ascii_lower(domain);
  while (d.find('.') != std::string::npos) {  // a top-level domain alone never signs
    auto keys = dir.dkim_keys(d);
    if (keys && !keys->empty()) return std::move(*keys);
    d.erase(0, d.find('.') + 1);
  }
  return {};
}

std::string sign_with(const std::vector<store::DkimKey>& keys, const mail::dkim::Signer& signer, std::int64_t now,
                      std::string& errors) {
  std::string fields;
  for (const store::DkimKey& k : keys) {
    auto key = parsed_key(k.private_key);
    if (!key) {
      errors += (errors.empty() ? "" : "; ") + k.domain + "/" + k.selector + ": the stored key does not parse";
      continue;
    }
    auto field = signer.sign(*key, {k.domain, k.selector, now, 0});
    if (field) fields += *field;
    else errors += (errors.empty() ? "" : "; ") + k.domain + "/" + k.selector + ": " + field.error().message();
  }
  return fields;
}

std::string dkim_fields(store::DirectoryLookups& dir, std::string_view message, std::int64_t now, std::string& errors) {
  mail::dkim::Signer signer;
  signer.feed(message);
  signer.finish();
  auto domain = signer.from_domain();
  if (!domain) return "";
  auto keys = signing_keys(dir, *domain);
  if (keys.empty()) return "";
  return sign_with(keys, signer, now, errors);
}

}  // namespace cmail::backends
