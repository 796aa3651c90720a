// cmail/net/mta_sts.h: MTA-STS policies (RFC 8461) found, fetched and cached on the runtime.
//
// policy(domain) answers which policy is in force for a recipient domain: it asks the Resolver
// for the TXT records of _mta-sts.<domain>, and when the published id is not the cached one (or
// nothing valid is cached) fetches https://mta-sts.<domain>/.well-known/mta-sts.txt with the
// one-GET engine of cmail/http/client.h over Runtime::connect: implicit TLS with the certificate
// verified against `ca_file` for the name mta-sts.<domain> (SNI too), the host's addresses from
// the same Resolver, no redirect followed, text/plain only, at most 64 KiB, a timeout
// (RFC 8461 3.3). The plain decisions are cmail/mail/mta_sts.h's.
//
// Cache: per domain, until max_age after the fetch (RFC 8461 5.1), in memory and, given a Store,
// in the master database so that policies outlive restarts (read once per domain, written after
// each fetch); a policy whose refresh fails stays in force until then, and a domain without one
// is delivered to as usual (RFC 8461 3.3). Concurrent questions for one domain share one lookup
// and fetch.
//
// Thread-safety: create, use and destroy on the Runtime's loop thread. REQUIRES the Runtime and
// the Resolver to outlive it. Destroying it drops the callbacks of questions in flight.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/mta_sts.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>
#include <cmail/store/store.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace cmail::net {

class Runtime;

struct MtaStsOptions {
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";  // trusted roots for the policy host
  // The HTTPS port of policy hosts. RFC 8461 3.3 says 443; another port is for tests only.
  std::uint16_t port = 443;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};  // connect, and the response
  std::string bind;  // local address of the fetch ("" = any); addresses of another family are skipped
  std::function<void(int level, std::string_view line)> log;  // 1 policy changes, 3 debug
  // Where the cache is kept across restarts (table mta_sts, read and written on the runtime's
  // thread pool); nullptr: in memory only. REQUIRES it to outlive the MtaSts.
  store::Store* store = nullptr;
};

// The answer: the policy in force, if any.
using PolicyAnswer = std::optional<mail::mta_sts::Policy>;

class CMAIL_EXPORT MtaSts {
 public:
  static Result<std::unique_ptr<MtaSts>> create(Runtime& runtime, mail::Resolver& resolver, MtaStsOptions options);
  ~MtaSts();
  MtaSts(const MtaSts&) = delete;
  MtaSts& operator=(const MtaSts&) = delete;

  // The policy in force for `domain` (lower case, no trailing dot). done runs once on the loop,
  // never inside this call.
  void policy(const std::string& domain, std::function<void(PolicyAnswer)> done);

  // What is cached for `domain` (tests, cmail-admin).
  std::optional<mail::mta_sts::Cached> cached(const std::string& domain) const;

  struct Core;  // private to libcmail/net/mta_sts.cc

 private:
  explicit MtaSts(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace cmail::net
