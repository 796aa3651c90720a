// DANE in the dispatcher's route. See dane_route.h.
#include "dane_route.h"

#include <set>

namespace cmail::net {

bool dane_wanted(bool mx_secure, const mail::HostPlan& plan, const std::vector<mail::AddressResult>& answers) {
  for (std::size_t i = 0; i < plan.hosts.size() && i < answers.size(); ++i)
    if (mail::dane::wants_tlsa(mx_secure, answers[i])) return true;
  return false;
}

void dane_route(mail::Resolver& resolver, const std::string& domain, bool mx_secure, const mail::HostPlan& plan,
                const std::vector<mail::AddressResult>& answers, std::vector<mail::Candidate> candidates,
                std::function<void(DaneRoute)> done) {
  struct Pending {
    std::string domain;
    std::vector<mail::Candidate> candidates;
    std::map<std::string, mail::dane::HostPolicy> policies;
    std::map<std::string, std::string> hosts;  // key -> host, for the contexts' names
    std::size_t left = 0;
    bool started = false;  // all lookups asked: a resolver that answers inside the call waits for this
    std::function<void(DaneRoute)> done;
  };
  auto p = std::make_shared<Pending>();
  p->domain = domain;
  p->candidates = std::move(candidates);
  p->done = std::move(done);
  auto finish = [p] {
    if (!p->started || p->left > 0 || !p->done) return;
    DaneRoute route;
    auto allowed = mail::dane::candidates(p->candidates, p->policies);
    if (auto* f = std::get_if<mail::Failure>(&allowed)) {
      route.failure = *f;
    } else {
      for (mail::dane::Allowed& a : std::get<std::vector<mail::dane::Allowed>>(allowed)) {
        const std::string k = mail::dane::key(a.candidate.host, a.candidate.port.port);
        if (a.policy.level != mail::dane::Level::None && !route.connections.count(k)) {
          DaneConnection dc;
          dc.level = a.policy.level;
          if (a.policy.level == mail::dane::Level::Authenticate) {
            TlsClientOptions o;
            o.verify = false;
            o.server_name = a.candidate.host;
            o.tlsa = a.policy.records;
            o.tlsa_names = mail::dane::reference_names(a.candidate.host, p->domain);  // RFC 7672 3.2.2
            auto ctx = TlsClientContext::load(o);
            if (!ctx) {  // only when the random generator cannot start: treat as a failed lookup
              route.notes.push_back("DANE: no TLS context for " + a.candidate.host + ": " + ctx.error().message());
              continue;
            }
            dc.tls = *ctx;
            const std::size_t n = a.policy.records.size();
            dc.describe = "dane=authenticate (" + std::to_string(n) + " usable TLSA record" + (n == 1 ? ")" : "s)");
          } else {
            dc.describe = "dane=encrypt (" + a.policy.reason + ")";
          }
          route.notes.push_back(a.candidate.host + ":" + std::to_string(a.candidate.port.port) + " " + dc.describe);
          route.connections[k] = std::move(dc);
        }
        route.candidates.push_back(std::move(a.candidate));
      }
      if (route.candidates.empty() && !p->candidates.empty())
        route.failure = mail::Failure{mail::failure_local({4, 7, 5}, "DANE: no TLS context for any server"), false};
    }
    for (const auto& [k, pol] : p->policies)
      if (pol.level == mail::dane::Level::Unreachable) route.notes.push_back(k + " left out: " + pol.reason);
    auto d = std::move(p->done);
    p->done = nullptr;
    d(std::move(route));
  };
  // One lookup per (host, port) of a host whose MX and address answers are secure.
  std::set<std::string> asked;
  std::vector<std::pair<std::string, std::string>> lookups;  // key, TLSA name
  for (std::size_t i = 0; i < plan.hosts.size() && i < answers.size(); ++i) {
    if (!mail::dane::wants_tlsa(mx_secure, answers[i])) continue;
    for (const mail::PortChoice& port : plan.ports) {
      const std::string k = mail::dane::key(plan.hosts[i], port.port);
      if (!asked.insert(k).second) continue;
      lookups.push_back({k, mail::dane::tlsa_name(plan.hosts[i], port.port)});  // RFC 7672 2.2.3
    }
  }
  p->left = lookups.size();
  for (const auto& [k, name] : lookups)
    resolver.tlsa(name, [p, finish, k = k, name = name](mail::TlsaResult r) {
      p->policies[k] = mail::dane::host_policy(name, r);
      --p->left;
      finish();
    });
  p->started = true;
  finish();
}

const DaneConnection* dane_connection(const DaneRoute& route, const mail::Candidate& cand, smtp::ClientOptions& co) {
  auto it = route.connections.find(mail::dane::key(cand.host, cand.port.port));
  if (it == route.connections.end() || it->second.level == mail::dane::Level::None) return nullptr;
  // RFC 7672 2.2: TLS is required wherever usable or unusable TLSA records are published.
  if (!co.tls_active) co.tls = smtp::TlsPolicy::Required;
  return &it->second;
}

}  // namespace cmail::net
