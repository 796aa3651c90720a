// libcmail/net/dane_route.h: DANE in the dispatcher's route (private to libcmail/net).
//
// Between the address lookups and the first connection, the dispatcher (dispatcher.cc) asks
// dane_route() which of its candidates DANE allows and how to connect to them. It looks up the
// TLSA records of every (host, port) that mail::dane::wants_tlsa() picks, all at once, turns
// the answers into policies (mail::dane::host_policy) and the candidates into the allowed ones
// (mail::dane::candidates), and gives each host that authenticates by DANE a TLS client
// context of its own (cmail/net/tls.h: its usable records, its reference names). The dispatcher then
// (dane_connection) sets up one connection: STARTTLS (or implicit TLS) required, and that context.
//
// Thread-safety: the Runtime's loop thread, like the resolver and the dispatcher.
#pragma once

#include <cmail/mail/dane.h>
#include <cmail/mail/resolver.h>
#include <cmail/mail/route.h>
#include <cmail/net/runtime.h>
#include <cmail/net/tls.h>
#include <cmail/smtp/client.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cmail::net {

// What DANE asks of the connections to one (host, port).
struct DaneConnection {
  mail::dane::Level level = mail::dane::Level::None;
  std::shared_ptr<TlsClientContext> tls;  // Authenticate: the context that checks the records
  std::string describe;                   // for logs: "dane=authenticate (2 usable TLSA records)"
};

struct DaneRoute {
  std::vector<mail::Candidate> candidates;             // those DANE allows, in order
  std::map<std::string, DaneConnection> connections;   // by mail::dane::key(), where DANE applies
  std::optional<mail::Failure> failure;                // when it allows none
  std::vector<std::string> notes;                      // for the debug log
};

// Whether any host of the plan needs its TLSA records looked up (answers[i] for plan.hosts[i]).
bool dane_wanted(bool mx_secure, const mail::HostPlan& plan, const std::vector<mail::AddressResult>& answers);

// The route DANE allows. `domain` is the next-hop domain (the recipient domain), a reference
// name for DANE-TA (RFC 7672 3.2.2). `done` runs once, later, on the loop; never when the
// resolver is destroyed first (the resolver's contract).
void dane_route(mail::Resolver& resolver, const std::string& domain, bool mx_secure, const mail::HostPlan& plan,
                const std::vector<mail::AddressResult>& answers, std::vector<mail::Candidate> candidates,
                std::function<void(DaneRoute)> done);

// What DANE changes for one connection to `cand`, when the route has an entry for it: TLS
// required (RFC 7672 2.2) in `co`. Returns the entry (for Authenticate its `tls` is the context
// to connect with instead of the usual one), or nullptr: nothing changed.
const DaneConnection* dane_connection(const DaneRoute& route, const mail::Candidate& cand, smtp::ClientOptions& co);

}  // namespace cmail::net
