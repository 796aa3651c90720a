// The resolver vocabulary. See cmail/mail/resolver.h.
#include <cmail/mail/resolver.h>

namespace cmail::mail {

const char* to_string(DnsStatus s) {
  switch (s) {
    case DnsStatus::Ok: return "Ok";
    case DnsStatus::NoData: return "NoData";
    case DnsStatus::NxDomain: return "NxDomain";
    case DnsStatus::TempFail: return "TempFail";
  }
  return "Unknown";
}

void Resolver::tlsa(std::string_view name, std::function<void(TlsaResult)> done) {
  TlsaResult r;
  r.error = "this resolver does not look up TLSA records (" + std::string(name) + ")";
  done(std::move(r));
}

}  // namespace cmail::mail
