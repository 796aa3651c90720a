// libFuzzer target: MTA-STS's parsers (cmail/mail/mta_sts.h): the input is a policy file, a
// TXT record and an MX pattern at once. Invariants: a parsed policy has max_age at most
// 31557600, mx patterns unless its mode is none, and every pattern lower case, matching a host
// made from it; a TXT record's id is 1 to 32 letters and digits; select_txt of one record
// agrees with parse_txt_record when it starts with "v=STSv1;".
#include <cmail/mail/mta_sts.h>

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace cmail::mail::mta_sts;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  if (auto p = parse_policy(in)) {
    if (p->max_age < 0 || p->max_age > kMaxAge) std::abort();
    if (p->mode != Mode::None && p->mx.empty()) std::abort();
    for (const auto& m : p->mx) {
      for (char c : m)
        if (c >= 'A' && c <= 'Z') std::abort();
      const std::string host = m.starts_with("*.") ? "x" + m.substr(1) : m;
      if (!mx_matches(m, host) || !host_allowed(*p, host)) std::abort();
      if (m.starts_with("*.") && mx_matches(m, m.substr(2))) std::abort();  // not the parent itself
    }
  }
  if (auto id = parse_txt_record(in)) {
    if (id->empty() || id->size() > 32) std::abort();
    for (char c : *id)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) std::abort();
  }
  if (in.starts_with("v=STSv1;") && select_txt({in}) != parse_txt_record(in)) std::abort();
  const auto nl = in.find('\n');
  if (nl != std::string::npos) (void)mx_matches(in.substr(0, nl), in.substr(nl + 1));
  return 0;
}
