// cmail/mail/route.h: where the mail of one destination goes, as plain functions over DNS
// answers. A destination is a recipient domain (MX delivery) or a handoff remote (RemoteSpec);
// its route is the list of candidates to try in order, each a host name, a numeric address, a
// port with its TLS mode, whether the certificate must be valid (TlsVerify) and the handoff
// credentials; or a failure for faillog, permanent or temporary, when there is no route.
//
// DNS lookups are asynchronous, so planning comes in steps that the caller runs between them:
//   route_target()      a queued recipient -> its destination (or a permanent failure)
//   first_lookup()      what to ask first: the MX records of the domain, or the addresses of
//                       known hosts at once (a handoff remote, an address literal)
//   hosts_from_mx()     the MX answer -> the hosts in order (order_mx), the implicit MX, or a
//                       failure (NXDOMAIN, null MX, DNS trouble, MX pointing back to us)
//   route_candidates()  the hosts' address answers -> candidates host x port x address, or a
//                       failure; addresses of another family than `bind` are left out
// The dispatcher (cmail/net/dispatcher.h) runs them with a Resolver on its loop and connects
// to the candidates with configure_client(); tests call them directly.
//
// Thread-safety: value types and pure functions (order_mx draws from the caller's generator).
#pragma once

#include <cmail/export.h>
#include <cmail/mail/delivery.h>
#include <cmail/mail/resolver.h>
#include <cmail/proto/sasl.h>
#include <cmail/smtp/client.h>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::mail {

// Where one queued recipient's mail goes.
struct RouteTarget {
  std::string key;   // groups recipients: the domain, or "remote " + the spec as queued
  std::string name;  // for logs: the domain, or "handoff " + the spec with its password hidden
  std::string domain;                // MX delivery: lower case; an address literal keeps its "[...]"
  std::optional<RemoteSpec> remote;  // handoff: this remote instead of the domain's MX
  bool handoff() const { return remote.has_value(); }
};

// The parts of the dispatcher's configuration that routing reads.
struct RouteOptions {
  std::vector<PortChoice> portprio = {{25, TlsMode::Opportunistic}};
  std::string self;  // our own name (`announce`): MX hosts of its preference or worse are left out
  std::string bind;  // local address of connections ("" = any): other families are left out
  TlsVerify verify = TlsVerify::Credentials;
};

// The hosts whose addresses are to be looked up, in the order to try.
struct HostPlan {
  std::vector<std::string> hosts;
  std::vector<PortChoice> ports;  // tried for each host, in order
  bool implicit_mx = false;       // RFC 5321 5.1: the domain itself; no address is permanent
  bool operator==(const HostPlan&) const = default;
};

// The first question for a destination.
struct FirstLookup {
  std::optional<std::string> mx;  // the MX records of this domain, then hosts_from_mx()
  HostPlan hosts;                 // when mx is nullopt: these hosts' addresses at once
};

// One server to try.
struct Candidate {
  std::string host;     // the name: SNI, certificate name, logs, failure records
  std::string address;  // numeric
  PortChoice port;
  bool verify = false;  // the certificate must be valid for `host` (TLS is then required)
  std::optional<sasl::Credentials> credentials;  // handoff AUTH
  // "host [address]:port", for logs and failure records.
  std::string where() const { return host + " [" + address + "]:" + std::to_string(port.port); }
};

// The destination of a queued recipient: its handoff remote if it has one, else the domain of
// the address (after the last '@', lower-cased). A remote spec that does not parse (5.3.5) and
// an address without a domain (5.1.3) are permanent failures.
CMAIL_EXPORT std::variant<RouteTarget, Failure> route_target(const std::optional<std::string>& remote,
                                                             std::string_view recipient);

// What to look up first: a handoff remote's host (with its own port, else portprio), an
// address literal as it is, otherwise the domain's MX records.
CMAIL_EXPORT FirstLookup first_lookup(const RouteTarget& target, const RouteOptions& options);

// MX hosts in the order to try (RFC 5321 5.1): ascending preference, shuffled among equal
// preferences. If `self` (our own name) is among them, it and every host of the same or a
// higher preference are left out. Hosts are lower-cased; duplicates dropped.
CMAIL_EXPORT std::vector<std::string> order_mx(std::vector<MxRecord> records, std::string_view self,
                                               std::mt19937& rng);

// The hosts of a domain from its MX answer: the ordered MX hosts; the domain itself when it has
// no MX (NoData or no records: the implicit MX, RFC 5321 5.1); else a failure: NXDOMAIN (5.1.2)
// and a null MX (5.1.10, RFC 7505 3) at once and permanently, MX records that all point back to
// us (5.4.6) permanently, a DNS failure (4.4.3) temporarily.
CMAIL_EXPORT std::variant<HostPlan, Failure> hosts_from_mx(const RouteTarget& target, const MxResult& answer,
                                                           const RouteOptions& options, std::mt19937& rng);

// The candidates from the address answers of plan.hosts (answers[i] for hosts[i]): for each
// host in order, each port, each address (IPv6 first as the resolver gives them). Addresses of
// another family than options.bind are left out (the `bind` directive); when that leaves none, a
// temporary failure (4.4.1). Without any address: a DNS failure of some host is temporary
// (4.4.3); the implicit MX without an address is permanent (5.1.2, RFC 5321 5.1); otherwise
// MX hosts without addresses are permanent (5.4.4) and a handoff remote's temporary.
CMAIL_EXPORT std::variant<std::vector<Candidate>, Failure> route_candidates(
    const RouteTarget& target, const HostPlan& plan, const std::vector<AddressResult>& answers,
    const RouteOptions& options);

// Every candidate failed before a transaction could start: a temporary failure (4.4.1) naming
// the last error.
CMAIL_EXPORT Failure unreachable(const RouteTarget& target, std::string_view last_error);

// How the SMTP client talks to a candidate: the TLS policy of its port (opportunistic STARTTLS
// becomes required when the certificate is verified), implicit TLS, the credentials. Leaves the
// other options (name, timeouts, auth_without_tls) as they are.
CMAIL_EXPORT void configure_client(const Candidate& candidate, smtp::ClientOptions& options);

}  // namespace cmail::mail
