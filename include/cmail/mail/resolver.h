// cmail/mail/resolver.h: the DNS questions mail policy asks, as an interface.
//
// Resolver answers the two questions outbound delivery asks (RFC 5321 5.1), the MX records of
// a domain and the addresses (AAAA and A) of a host, the TXT records of a name that SPF,
// DKIM, DMARC and MTA-STS policy is published in, and the TLSA records of DANE (RFC 6698,
// RFC 7672), so that those checks stay plain policy code over this interface. The runtime implements it with c-ares on its loop (cmail/net/resolver.h, which
// also has a table-driven resolver for tests); an embedder may implement it over anything.
//
// Results keep apart what delivery must treat differently: NxDomain (the name does not exist:
// a permanent failure), NoData (the name exists without records of that type: for MX, the
// implicit MX of RFC 5321 5.1 applies), TempFail (timeout, SERVFAIL, refused: retry later).
// A null MX (RFC 7505: one MX record with preference 0 and host ".") comes back as Ok with
// that one record and host "" (see MxResult::null_mx()).
//
// `secure` on an answer says that it was DNSSEC-validated: the AD bit of the answer (RFC 4035
// 3.2.3) from a name server trusted to validate (RFC 6840 5.7; the c-ares resolver trusts it
// only with ResolverOptions::dnssec). It holds for Ok answers and for NoData and NxDomain
// (authenticated denial of existence) alike, and is false by default: an implementation that
// cannot tell says "not secure", never "secure". DANE (cmail/mail/dane.h) applies only where
// the MX and address answers are secure.
//
// Contract for implementations: `done` runs exactly once, on the thread that owns the caller's
// event loop, and never inside the call that started the lookup (always later). Destroying a
// Resolver cancels the lookups in flight; their callbacks are then never called.
// Thread-safety: as the implementation says (the c-ares one: its loop thread only).
#pragma once

#include <cmail/export.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::mail {

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
  std::vector<MxRecord> records;  // as received (ordering: order_mx, cmail/mail/route.h)
  std::string error;              // for logs when status is not Ok
  bool secure = false;            // DNSSEC-validated (see above)
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
  bool secure = false;  // both the AAAA and the A answer DNSSEC-validated (see above)
};

struct TxtResult {
  DnsStatus status = DnsStatus::TempFail;
  // One entry per TXT record, its character-strings joined without separator (RFC 7208 3.3,
  // RFC 6376 3.6.2.2), octets as received; the records in the order received.
  std::vector<std::string> records;
  std::string error;
};

// One TLSA record (RFC 6698 2.1): certificate usage, selector, matching type and the
// certificate association data (raw octets, not hex). What the numbers mean, and which records
// SMTP can use, is cmail/mail/dane.h's business: the resolver gives every record as received.
struct TlsaRecord {
  std::uint8_t usage = 0;
  std::uint8_t selector = 0;
  std::uint8_t matching = 0;
  std::string data;
  bool operator==(const TlsaRecord&) const = default;
};

struct TlsaResult {
  DnsStatus status = DnsStatus::TempFail;
  std::vector<TlsaRecord> records;  // in the order received
  std::string error;
  bool secure = false;  // DNSSEC-validated (see above)
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
  // TXT records of `name`. NoData when the name exists without TXT records.
  virtual void txt(std::string_view name, std::function<void(TxtResult)> done) = 0;
  // TLSA records of `name` ("_25._tcp.mx.example.org", RFC 6698 3). NoData when the name
  // exists without TLSA records. The default, for implementations that never mark an answer
  // secure (and so never get asked), answers TempFail at once, inside the call; the c-ares and
  // static resolvers of cmail/net/resolver.h implement it.
  virtual void tlsa(std::string_view name, std::function<void(TlsaResult)> done);
};

}  // namespace cmail::mail
