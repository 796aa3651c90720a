// cmail/resolver.h: DNS lookups for outbound delivery, asynchronous, on a Runtime's loop.
//
// Resolver answers the two questions the dispatcher asks (RFC 5321 5.1): the MX records of a
// domain, and the addresses (AAAA and A) of a host. make_resolver() uses c-ares on the
// Runtime's libuv loop with the system's name servers (/etc/resolv.conf) or the ones given;
// make_static_resolver() answers from a table, for tests and embedders that resolve elsewhere.
// TXT lookups (SPF, DKIM, MTA-STS) will join later with the same shape.
//
// Results keep apart what delivery must treat differently: NxDomain (the name does not exist:
// a permanent failure), NoData (the name exists without records of that type: for MX, the
// implicit MX of RFC 5321 5.1 applies), TempFail (timeout, SERVFAIL, refused: retry later).
// A null MX (RFC 7505: one MX record with preference 0 and host ".") comes back as Ok with
// that one record and host "" (see MxResult::null_mx()).
//
// Thread-safety: a Resolver is used on its Runtime's loop thread only; callbacks run there,
// never inside the call that started the lookup (always later, from the loop). Ownership: the
// Runtime must outlive the Resolver. Destroying the Resolver (or Runtime shutdown) cancels
// every lookup in flight; their callbacks are then never called.
#pragma once

#include <cmail/export.h>
#include <cmail/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::net {

class Runtime;

enum class DnsStatus {
  Ok,        // records found
  NoData,    // the name exists but has no records of the type asked
  NxDomain,  // the name does not exist (RCODE 3)
  TempFail,  // timeout, SERVFAIL, REFUSED, network error: try again later
};

CMAIL_EXPORT const char* to_string(DnsStatus s);

struct MxRecord {
  std::uint16_t preference = 0;
  std::string host;  // without the trailing dot; "" for the null MX's "."
  bool operator==(const MxRecord&) const = default;
};

struct MxResult {
  DnsStatus status = DnsStatus::TempFail;
  std::vector<MxRecord> records;  // as received (ordering is the dispatcher's job)
  std::string error;              // for logs when status is not Ok
  // RFC 7505 3: a single MX with preference 0 and the root as host.
  bool null_mx() const {
    return status == DnsStatus::Ok && records.size() == 1 && records[0].host.empty() &&
           records[0].preference == 0;
  }
};

struct AddressResult {
  DnsStatus status = DnsStatus::TempFail;
  std::vector<std::string> addresses;  // numeric: IPv6 ("2001:db8::1") first, then IPv4
  std::string error;
};

class CMAIL_EXPORT Resolver {
 public:
  virtual ~Resolver() = default;
  // MX records of `domain` (no trailing dot needed). done runs once, on the loop thread.
  virtual void mx(std::string_view domain, std::function<void(MxResult)> done) = 0;
  // AAAA and A records of `host`. A numeric address (IPv4 or IPv6, also "[...]" literals)
  // answers itself; names in /etc/hosts are found as the system would (c-ares "fb" order).
  // NoData when the name exists with neither record type.
  virtual void addresses(std::string_view host, std::function<void(AddressResult)> done) = 0;
};

struct ResolverOptions {
  // "HOST[:PORT]" or "[IPV6]:PORT" name servers, tried in order; empty = the system's
  // (/etc/resolv.conf). HOST must be numeric.
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{std::chrono::seconds(5)};  // per try
  int tries = 2;
};

// A c-ares resolver on the runtime's loop. Fails with InvalidArgument for a malformed server
// and with Internal when c-ares cannot start.
CMAIL_EXPORT Result<std::unique_ptr<Resolver>> make_resolver(Runtime& runtime,
                                                             const ResolverOptions& options = {});

// Answers from fixed tables (names compared case-insensitively, without trailing dot). A name
// in neither table is NxDomain; a name in `addresses` but not in `mx` is NoData for MX (and
// the reverse). Callbacks still run later, posted to the runtime's loop.
struct StaticZone {
  std::map<std::string, MxResult> mx;
  std::map<std::string, AddressResult> addresses;
};
CMAIL_EXPORT std::unique_ptr<Resolver> make_static_resolver(Runtime& runtime, StaticZone zone);

}  // namespace cmail::net
