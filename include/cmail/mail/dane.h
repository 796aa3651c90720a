// cmail/mail/dane.h: DANE for SMTP (RFC 7672, RFC 6698, RFC 7671) as plain functions.
//
// DANE authenticates an MX host's TLS certificate by TLSA records its (DNSSEC-signed) zone
// publishes at "_25._tcp.<host>", and tells the client that TLS is required there: a
// downgrade-resistant alternative to opportunistic TLS (RFC 7435). The steps, run by the
// dispatcher between its DNS lookups (cmail/net/dane_route.h):
//
//   wants_tlsa()    whether a host's TLSA records are to be looked up at all: only when the
//                   MX answer (or, for the implicit MX, its denial) and the host's address
//                   answers are DNSSEC-validated (RFC 7672 2.2.1, 2.2.2)
//   host_policy()   the TLSA answer -> what a connection to that host must do: the usual
//                   (insecure answer or none published), authenticated TLS against the usable
//                   records, unauthenticated but mandatory TLS (records all unusable), or not
//                   at all (a lookup failure) (RFC 7672 2.2)
//   candidates()    the route's candidates with what DANE asks of each: those it rules out
//                   dropped (a failed TLSA lookup, TLS required on a port that never uses
//                   it), or a temporary failure naming why when none is left
//   match_end_entity(), match_trust_anchor(), name_matches()  the certificate checks of
//                   RFC 7672 3.1 and 3.2 over DER octets; the TLS layer (cmail/net/tls.h)
//                   gives them the chain the server presented and verifies the signatures from
//                   a DANE-TA trust anchor down to the leaf itself
//
// Usable records are DANE-TA(2) and DANE-EE(3) (RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1)
// are not for SMTP) with selector Cert(0) or SPKI(1) and matching type Full(0), SHA2-256(1)
// or SHA2-512(2) whose data has that hash's length (RFC 6698 2.1, RFC 7671 5). DANE-EE
// matches the leaf with no name check and no validity check (RFC 7672 3.1.1); DANE-TA a
// certificate of the chain (which must hold the trust anchor, RFC 7672 3.1.2), then the leaf's
// names against the MX host and the next-hop domain (RFC 7672 3.2).
//
// Thread-safety: pure functions over values.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/mail/route.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::mail::dane {

// RFC 6698 2.1.1, 2.1.2, 2.1.3; RFC 7218 names them.
enum Usage : std::uint8_t { kPkixTa = 0, kPkixEe = 1, kDaneTa = 2, kDaneEe = 3 };
enum Selector : std::uint8_t { kCert = 0, kSpki = 1 };
enum Matching : std::uint8_t { kFull = 0, kSha256 = 1, kSha512 = 2 };

// "_25._tcp.mx.example.org" (RFC 6698 3, RFC 7672 2.2.3): the TLSA name of `host` at `port`.
CMAIL_EXPORT std::string tlsa_name(std::string_view host, std::uint16_t port = 25);

// The record as a zone file writes it: "3 1 1 0a1b...", the data in lower-case hex (cut to
// `max_hex` digits and "..." when longer, for logs; 0 = all).
CMAIL_EXPORT std::string to_string(const TlsaRecord& r, std::size_t max_hex = 0);
// "3 1 1 <hex>" back to a record (whitespace inside the hex allowed, as zone files do);
// nullopt when it is not three numbers 0-255 and an even number of hex digits.
CMAIL_EXPORT std::optional<TlsaRecord> parse_tlsa(std::string_view text);

// Whether SMTP can use the record (see above).
CMAIL_EXPORT bool usable(const TlsaRecord& r);

// RFC 7672 2.2.1 and 2.2.2: TLSA records are looked up for a host only when the MX answer
// that named it (for the implicit MX, the answer that there is no MX) and its address answer
// are both DNSSEC-validated and the address lookup found addresses.
CMAIL_EXPORT bool wants_tlsa(bool mx_secure, const AddressResult& addresses);

// What connections to one host must do.
enum class Level {
  None,          // DANE does not apply: the usual TLS policy (insecure, or no TLSA published)
  Authenticate,  // TLS required, the certificate must match `records`
  Encrypt,       // TLS required, not authenticated (every record unusable)
  Unreachable,   // the TLSA lookup failed on a signed zone: do not connect
};
CMAIL_EXPORT const char* to_string(Level l);

struct HostPolicy {
  Level level = Level::None;
  std::vector<TlsaRecord> records;  // the usable ones, for Authenticate
  std::string reason;               // for Unreachable (and for logs): why
};

// RFC 7672 2.2: a secure answer with a usable record: Authenticate; a secure answer whose
// records are all unusable: Encrypt; an insecure answer, NoData or NxDomain: None (a secure
// denial means no TLSA is published; an insecure answer cannot be trusted either way); a
// lookup failure (TempFail: SERVFAIL, bogus, time-out): Unreachable. `name` is the TLSA
// name, for the reason.
CMAIL_EXPORT HostPolicy host_policy(std::string_view name, const TlsaResult& answer);

// The key of a (host, port) in the maps below: "mx.example.org:25".
CMAIL_EXPORT std::string key(std::string_view host, std::uint16_t port);

// The candidates DANE allows, in the route's order, each with its host's policy (Level::None
// for hosts DANE does not apply to). `policies` holds the hosts whose TLSA records were looked
// up, by key(). A host whose lookup failed is left out (RFC 7672 2.2: the next server, or
// later); so is a port of TlsMode::None where TLS is required. When that leaves none, the
// failure is temporary (4.7.5, RFC 3463 3.8: a cryptographic failure) and names the last
// reason.
struct Allowed {
  Candidate candidate;
  HostPolicy policy;
};
CMAIL_EXPORT std::variant<std::vector<Allowed>, Failure> candidates(const std::vector<Candidate>& route,
                                                                    const std::map<std::string, HostPolicy>& policies);

// One certificate of a presented chain, as the TLS layer gives it.
struct Certificate {
  std::string der;   // the whole certificate (selector Cert)
  std::string spki;  // its SubjectPublicKeyInfo, DER (selector SPKI)
};

// The record's association data matches the certificate: the selected octets (RFC 6698
// 2.1.2), whole or hashed (2.1.3), compared in constant time. False for an unusable record.
CMAIL_EXPORT bool matches(const TlsaRecord& r, const Certificate& c);

// The first DANE-EE(3) record that matches the leaf (chain[0]), or nullopt. RFC 7672 3.1.1:
// this alone authenticates the server: no name check, no validity check.
CMAIL_EXPORT std::optional<TlsaRecord> match_end_entity(const std::vector<TlsaRecord>& records,
                                                        const std::vector<Certificate>& chain);

// The certificates of the chain a DANE-TA(2) record matches, as (index in chain, record),
// nearest the leaf first. RFC 7672 3.1.2: the trust anchor must be in the chain the server
// presents; the TLS layer then checks that the leaf chains up to one of them.
struct AnchorMatch {
  std::size_t index = 0;
  TlsaRecord record;
};
CMAIL_EXPORT std::vector<AnchorMatch> match_trust_anchor(const std::vector<TlsaRecord>& records,
                                                         const std::vector<Certificate>& chain);

// RFC 7672 3.2.2: the names a DANE-TA authenticated certificate must carry one of: the MX
// host (the TLSA base domain) and the next-hop domain (the recipient domain), lower case,
// without duplicates.
CMAIL_EXPORT std::vector<std::string> reference_names(std::string_view mx_host, std::string_view domain);

// RFC 7672 3.2.3 and RFC 6125 6.4: one of the certificate's names (its subjectAltName
// dNSNames, or its subject CN when it has none: the caller gives that) equals a reference
// name, ASCII case-insensitively; "*" as the whole first label stands for exactly one label
// ("*.example.org" covers "mx.example.org", never "example.org" nor "a.mx.example.org") and
// needs two labels after it ("*.org" covers nothing).
CMAIL_EXPORT bool name_matches(const std::vector<std::string>& cert_names, const std::vector<std::string>& references);

}  // namespace cmail::mail::dane
