// DANE for SMTP. See cmail/mail/dane.h.
#include <cmail/mail/dane.h>

#include <cmail/crypto/crypto.h>
#include <cmail/proto/ascii.h>

#include <algorithm>

namespace cmail::mail::dane {

namespace {

std::string_view trim_dot(std::string_view s) {
  while (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (proto::ascii_lower(a[i]) != proto::ascii_lower(b[i])) return false;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The octets a record's selector picks (RFC 6698 2.1.2).
const std::string* selected(const TlsaRecord& r, const Certificate& c) {
  if (r.selector == kCert) return &c.der;
  if (r.selector == kSpki) return &c.spki;
  return nullptr;
}

}  // namespace

std::string tlsa_name(std::string_view host, std::uint16_t port) {
  return "_" + std::to_string(port) + "._tcp." + proto::ascii_lower(trim_dot(host));  // RFC 6698 3
}

std::string to_string(const TlsaRecord& r, std::size_t max_hex) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = std::to_string(r.usage) + " " + std::to_string(r.selector) + " " + std::to_string(r.matching) + " ";
  std::string hex;
  for (char ch : r.data) {
    auto c = static_cast<unsigned char>(ch);
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  if (max_hex && hex.size() > max_hex) hex = hex.substr(0, max_hex) + "...";
  return out + hex;
}

std::optional<TlsaRecord> parse_tlsa(std::string_view text) {
  TlsaRecord r;
  std::uint8_t* fields[] = {&r.usage, &r.selector, &r.matching};
  std::size_t at = 0;
  auto skip_space = [&] {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) ++at;
  };
  for (std::uint8_t* f : fields) {
    skip_space();
    std::size_t start = at;
    unsigned v = 0;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9' && at - start < 4) v = v * 10 + static_cast<unsigned>(text[at++] - '0');
    if (at == start || v > 255 || (at < text.size() && text[at] != ' ' && text[at] != '\t')) return std::nullopt;
    *f = static_cast<std::uint8_t>(v);
  }
  int high = -1;
  for (; at < text.size(); ++at) {
    char c = text[at];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    int v = hex_value(c);
    if (v < 0) return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      r.data += static_cast<char>(high << 4 | v);
      high = -1;
    }
  }
  if (high >= 0 || r.data.empty()) return std::nullopt;
  return r;
}

bool usable(const TlsaRecord& r) {
  // RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP; RFC 6698 2.1: the known
  // selectors and matching types; RFC 7671 5: a digest of the wrong length matches nothing.
  if (r.usage != kDaneTa && r.usage != kDaneEe) return false;
  if (r.selector != kCert && r.selector != kSpki) return false;
  switch (r.matching) {
    case kFull: return !r.data.empty();
    case kSha256: return r.data.size() == crypto::kSha256Size;
    case kSha512: return r.data.size() == crypto::kSha512Size;
    default: return false;
  }
}

bool wants_tlsa(bool mx_secure, const AddressResult& a) {
  // RFC 7672 2.2.1: no DANE for any host of an insecure MX RRset; RFC 7672 2.2.2 (the
  // implicit MX) and 2.2.3: TLSA records only for hosts whose address records are secure.
  return mx_secure && a.secure && a.status == DnsStatus::Ok && !a.addresses.empty();
}

const char* to_string(Level l) {
  switch (l) {
    case Level::None: return "none";
    case Level::Authenticate: return "authenticate";
    case Level::Encrypt: return "encrypt";
    case Level::Unreachable: return "unreachable";
  }
  return "unknown";
}

HostPolicy host_policy(std::string_view name, const TlsaResult& answer) {
  HostPolicy p;
  switch (answer.status) {
    case DnsStatus::TempFail:
      // RFC 7672 2.2: "Any lookup error ... MUST result in falling back to the next SMTP
      // server or delayed delivery" (RFC 7672 2.1.1: bogus and indeterminate answers too).
      p.level = Level::Unreachable;
      p.reason = "DANE: TLSA lookup for " + std::string(name) + " failed" +
                 (answer.error.empty() ? std::string() : ": " + answer.error);
      return p;
    case DnsStatus::NoData:
    case DnsStatus::NxDomain:
      p.reason = "no TLSA records at " + std::string(name);  // RFC 7672 2.2: pre-DANE opportunistic TLS
      return p;
    case DnsStatus::Ok: break;
  }
  if (!answer.secure) {  // RFC 7672 2.2: an insecure TLSA RRset is as if none were published
    p.reason = "TLSA records at " + std::string(name) + " are not DNSSEC-validated";
    return p;
  }
  for (const TlsaRecord& r : answer.records)
    if (usable(r) && std::find(p.records.begin(), p.records.end(), r) == p.records.end()) p.records.push_back(r);
  // RFC 7672 2.2: secure with a usable record: authenticated TLS; secure with none usable:
  // TLS, but not authenticated.
  p.level = p.records.empty() ? Level::Encrypt : Level::Authenticate;
  if (p.records.empty()) p.reason = "the TLSA records at " + std::string(name) + " are all unusable";
  return p;
}

std::string key(std::string_view host, std::uint16_t port) {
  return proto::ascii_lower(trim_dot(host)) + ":" + std::to_string(port);
}

std::variant<std::vector<Allowed>, Failure> candidates(const std::vector<Candidate>& route,
                                                       const std::map<std::string, HostPolicy>& policies) {
  std::vector<Allowed> out;
  std::string last;
  for (const Candidate& c : route) {
    auto it = policies.find(key(c.host, c.port.port));
    HostPolicy p = it == policies.end() ? HostPolicy{} : it->second;
    if (p.level == Level::Unreachable) {  // RFC 7672 2.2: a lookup error: not this server
      last = p.reason;
      continue;
    }
    if (p.level != Level::None && c.port.tls == TlsMode::None) {  // RFC 7672 2.2: TLS is a MUST
      last = "DANE: TLS is required at " + c.host + ", but port " + std::to_string(c.port.port) + " is used without";
      continue;
    }
    out.push_back({c, std::move(p)});
  }
  if (out.empty() && !route.empty()) return Failure{failure_local({4, 7, 5}, last), false};
  return out;
}

bool matches(const TlsaRecord& r, const Certificate& c) {
  if (!usable(r)) return false;
  const std::string* octets = selected(r, c);
  if (!octets || octets->empty()) return false;
  switch (r.matching) {  // RFC 6698 2.1.3
    case kFull: return crypto::constant_time_equal(*octets, r.data);
    case kSha256: return crypto::constant_time_equal(crypto::sha256(*octets), r.data);
    case kSha512: return crypto::constant_time_equal(crypto::sha512(*octets), r.data);
    default: return false;
  }
}

std::optional<TlsaRecord> match_end_entity(const std::vector<TlsaRecord>& records, const std::vector<Certificate>& chain) {
  if (chain.empty()) return std::nullopt;
  for (const TlsaRecord& r : records)
    if (r.usage == kDaneEe && matches(r, chain[0])) return r;  // RFC 7672 3.1.1
  return std::nullopt;
}

std::vector<AnchorMatch> match_trust_anchor(const std::vector<TlsaRecord>& records, const std::vector<Certificate>& chain) {
  std::vector<AnchorMatch> out;
  for (std::size_t i = 0; i < chain.size(); ++i)
    for (const TlsaRecord& r : records)
      if (r.usage == kDaneTa && matches(r, chain[i])) {  // RFC 7672 3.1.2
        out.push_back({i, r});
        break;
      }
  return out;
}

std::vector<std::string> reference_names(std::string_view mx_host, std::string_view domain) {
  std::vector<std::string> out;
  for (std::string_view n : {mx_host, domain}) {  // RFC 7672 3.2.2
    std::string name = proto::ascii_lower(trim_dot(n));
    if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
  return out;
}

bool name_matches(const std::vector<std::string>& cert_names, const std::vector<std::string>& references) {
  for (std::string_view presented : cert_names) {
    presented = trim_dot(presented);
    for (std::string_view ref : references) {
      ref = trim_dot(ref);
      if (presented.empty() || ref.empty()) continue;
      if (iequal(presented, ref)) return true;
      // RFC 6125 6.4.3 (RFC 7672 3.2.3): "*" as the whole left-most label, one label.
      if (presented.size() > 2 && presented[0] == '*' && presented[1] == '.') {
        std::string_view rest = presented.substr(2);
        if (rest.find('.') == std::string_view::npos || rest.find('*') != std::string_view::npos) continue;
        std::size_t dot = ref.find('.');
        if (dot == 0 || dot == std::string_view::npos) continue;
        if (iequal(ref.substr(dot + 1), rest)) return true;
      }
    }
  }
  return false;
}

}  // namespace cmail::mail::dane
