// Route planning: see cmail/mail/route.h.
#include <cmail/mail/route.h>

#include <cmail/proto/ascii.h>

#include <algorithm>

namespace cmail::mail {

namespace {

enum class Family { Unknown, V4, V6 };

// The family of a numeric address ("[...]" literals too); Unknown for anything else.
Family family_of(std::string_view a) {
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  if (a.find(':') != std::string_view::npos) return Family::V6;
  if (!a.empty() && std::all_of(a.begin(), a.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; }))
    return Family::V4;
  return Family::Unknown;
}

// How failure records name a destination.
std::string what(const RouteTarget& t) { return t.remote ? "handoff remote " + t.remote->host : t.domain; }

// Whether the certificates of this destination's servers must be valid (`tls_verify`).
bool verified(const RouteTarget& t, TlsVerify v) {
  if (v == TlsVerify::Always) return true;
  if (!t.remote) return false;
  return v == TlsVerify::Handoff || (v == TlsVerify::Credentials && t.remote->credentials);
}

bool address_literal(std::string_view d) { return d.size() > 2 && d.front() == '[' && d.back() == ']'; }

}  // namespace

std::variant<RouteTarget, Failure> route_target(const std::optional<std::string>& remote, std::string_view recipient) {
  RouteTarget t;
  if (remote) {
    t.key = "remote " + *remote;
    t.name = "handoff " + redact_remote(*remote);
    auto spec = parse_remote(*remote);
    // Permanent: a spec that does not parse never will (docs/compatibility.md).
    if (!spec) return Failure{failure_local({5, 3, 5}, "invalid handoff remote: " + spec.error().message()), true};
    t.remote = std::move(*spec);
    return t;
  }
  t.domain = recipient_domain(recipient);
  if (t.domain.empty())  // permanent, not left queued (docs/compatibility.md)
    return Failure{failure_local({5, 1, 3}, "the recipient has no domain"), true};
  t.key = t.name = t.domain;
  return t;
}

FirstLookup first_lookup(const RouteTarget& t, const RouteOptions& o) {
  FirstLookup l;
  if (t.remote) {
    l.hosts = {{t.remote->host}, t.remote->port ? std::vector{*t.remote->port} : o.portprio, false};
  } else if (address_literal(t.domain)) {  // RFC 5321 4.1.3: a literal names the host itself
    l.hosts = {{t.domain}, o.portprio, false};
  } else {
    l.mx = t.domain;
  }
  return l;
}

std::vector<std::string> order_mx(std::vector<MxRecord> records, std::string_view self, std::mt19937& rng) {
  for (auto& r : records) r.host = proto::ascii_lower(r.host);
  std::shuffle(records.begin(), records.end(), rng);  // RFC 5321 5.1: random among equals
  std::stable_sort(records.begin(), records.end(),
                   [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
  const std::string me = proto::ascii_lower(self);
  std::optional<std::uint16_t> cutoff;
  for (const auto& r : records)
    if (!me.empty() && r.host == me && (!cutoff || r.preference < *cutoff)) cutoff = r.preference;
  std::vector<std::string> hosts;
  for (const auto& r : records) {
    if (cutoff && r.preference >= *cutoff) continue;  // RFC 5321 5.1: never to ourselves or beyond
    if (r.host.empty() || std::find(hosts.begin(), hosts.end(), r.host) != hosts.end()) continue;
    hosts.push_back(r.host);
  }
  return hosts;
}

std::variant<HostPlan, Failure> hosts_from_mx(const RouteTarget& t, const MxResult& r, const RouteOptions& o,
                                              std::mt19937& rng) {
  const std::string& d = t.domain;
  const HostPlan implicit{{d}, o.portprio, true};  // RFC 5321 5.1: the implicit MX
  switch (r.status) {
    case DnsStatus::NxDomain:
      return Failure{failure_local({5, 1, 2}, "Failed to resolve recipient domain: " + d + " does not exist"), true};
    case DnsStatus::TempFail:
      return Failure{failure_local({4, 4, 3}, "DNS lookup of the MX of " + d + " failed: " + r.error), false};
    case DnsStatus::NoData:
      return implicit;
    case DnsStatus::Ok:
      break;
  }
  if (r.null_mx())  // RFC 7505 3
    return Failure{failure_local({5, 1, 10}, d + " does not accept mail (null MX)"), true};
  if (r.records.empty()) return implicit;
  auto hosts = order_mx(r.records, o.self, rng);
  if (hosts.empty())  // RFC 5321 5.1: only ourselves (or worse) is a loop
    return Failure{failure_local({5, 4, 6}, "the MX records of " + d + " point back to this host"), true};
  return HostPlan{std::move(hosts), o.portprio, false};
}

std::variant<std::vector<Candidate>, Failure> route_candidates(const RouteTarget& t, const HostPlan& plan,
                                                               const std::vector<AddressResult>& answers,
                                                               const RouteOptions& o) {
  const bool verify = verified(t, o.verify);
  const std::optional<sasl::Credentials> credentials = t.remote ? t.remote->credentials : std::nullopt;
  const Family local = o.bind.empty() ? Family::Unknown : family_of(o.bind);
  std::vector<Candidate> out;
  bool temp = false;
  std::size_t other_family = 0;
  std::string errors;
  const AddressResult none{DnsStatus::TempFail, {}, "no answer"};
  for (std::size_t h = 0; h < plan.hosts.size(); ++h) {
    const AddressResult& res = h < answers.size() ? answers[h] : none;
    if (res.status != DnsStatus::Ok) {
      temp = temp || res.status == DnsStatus::TempFail;
      errors += (errors.empty() ? "" : "; ") + plan.hosts[h] + ": " + to_string(res.status);
      continue;
    }
    for (const auto& port : plan.ports)
      for (const auto& a : res.addresses) {
        const Family f = family_of(a);
        if (local != Family::Unknown && f != Family::Unknown && f != local) {  // unreachable from `bind`
          ++other_family;
          continue;
        }
        out.push_back({plan.hosts[h], a, port, verify, credentials});
      }
  }
  if (!out.empty()) return out;
  if (other_family) return unreachable(t, "every address is of another family than bind " + o.bind);
  if (temp) return Failure{failure_local({4, 4, 3}, "cannot resolve " + what(t) + ": " + errors), false};
  if (plan.implicit_mx)  // RFC 5321 5.1: no MX and no address
    return Failure{failure_local({5, 1, 2}, what(t) + " has no MX and no address record"), true};
  return Failure{failure_local({5, 4, 4}, "no server of " + what(t) + " has an address: " + errors), !t.handoff()};
}

Failure unreachable(const RouteTarget& t, std::string_view last_error) {
  const char* what = t.handoff() ? "Failed to connect or negotiate with handoff remote" : "Failed to reach any MX";
  return Failure{failure_local({4, 4, 1}, std::string(what) + ": " + std::string(last_error)), false};
}

void configure_client(const Candidate& c, smtp::ClientOptions& co) {
  switch (c.port.tls) {
    case TlsMode::Opportunistic: co.tls = c.verify ? smtp::TlsPolicy::Required : smtp::TlsPolicy::Opportunistic; break;
    case TlsMode::StartTls: co.tls = smtp::TlsPolicy::Required; break;
    case TlsMode::Implicit: co.tls_active = true; break;  // RFC 8314 3.3
    case TlsMode::None: co.tls = smtp::TlsPolicy::None; break;
  }
  co.auth = c.credentials;
}

}  // namespace cmail::mail
