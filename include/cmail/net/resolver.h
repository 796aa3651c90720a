// cmail/net/resolver.h: mail::Resolver implementations on a Runtime's loop.
//
// make_resolver() uses c-ares on the Runtime's libuv loop with the system's name servers
// (/etc/resolv.conf) or the ones given; make_static_resolver() answers from a table, for
// tests and embedders that resolve elsewhere. Both keep the contract of cmail/mail/resolver.h.
//
// Thread-safety: a resolver is used on its Runtime's loop thread only; callbacks run there.
// Ownership: the Runtime must outlive the resolver. Destroying the resolver (or Runtime
// shutdown) cancels every lookup in flight; their callbacks are then never called.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::net {

class Runtime;

struct ResolverOptions {
  // "HOST[:PORT]" or "[IPV6]:PORT" name servers, tried in order; empty = the system's
  // (/etc/resolv.conf). HOST must be numeric.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{std::chrono::seconds(5)};  // per try
  int tries = 2;
  // The name servers validate DNSSEC and the path to them is trusted (a validating resolver
  // on this host, say): their AD bit (RFC 4035 3.2.3) makes answers `secure`, and addresses
  // are then asked for with AAAA and A queries of our own, for their AD bits. Off, nothing is
  // ever secure (RFC 6840 5.7: a stub resolver cannot tell a forged AD bit). `dnssec on`.
  bool dnssec = false;
};

// One name server as ResolverOptions::servers takes it ("HOST", "HOST:PORT", "[IPV6]",
// "[IPV6]:PORT" or a bare IPv6 address; HOST numeric, PORT 1 to 65535) in c-ares's form
// ("192.0.2.1:53", "[2001:db8::1]:53"); nullopt when malformed. Config files check each line
// with it, so that the error can name the line.
CMAIL_EXPORT std::optional<std::string> parse_name_server(std::string_view server);

// A c-ares resolver on the runtime's loop. Fails with InvalidArgument for a malformed server
// and with Internal when c-ares cannot start.
CMAIL_EXPORT Result<std::unique_ptr<mail::Resolver>> make_resolver(Runtime& runtime,
                                                             const ResolverOptions& options = {});

// Answers from fixed tables (names compared case-insensitively, without trailing dot). A name
// in no table is NxDomain, or, with `otherwise`, a name without MX records (NoData) and with
// those addresses (its TXT and TLSA lookups stay NxDomain); a name in one table but not
// another is NoData for the other's type. An answer is as secure as its `secure` flag says
// (tests of DANE set it on the MX, address and TLSA answers). Callbacks still run later,
// posted to the runtime's loop.
struct StaticZone {
  std::map<std::string, mail::MxResult> mx;
  std::map<std::string, mail::AddressResult> addresses;
  std::map<std::string, mail::TxtResult> txt;
  std::map<std::string, mail::TlsaResult> tlsa;  // by TLSA name: "_25._tcp.mx.example.test"
  std::optional<mail::AddressResult> otherwise;
};
CMAIL_EXPORT std::unique_ptr<mail::Resolver> make_static_resolver(Runtime& runtime, StaticZone zone);

}  // namespace cmail::net
