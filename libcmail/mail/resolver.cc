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

}  // namespace cmail::mail
