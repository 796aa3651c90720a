// DKIM signing with the dkim_keys table; see dkim_signing.h.
#include <cmail/backends/dkim_signing.h>

#include <cmail/crypto/keys.h>
#include <cmail/proto/ascii.h>

namespace cmail::backends {

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
    auto key = crypto::PrivateKey::parse(k.private_key);
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
