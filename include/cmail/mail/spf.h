// cmail/mail/spf.h: SPF (RFC 7208) records and macros as pure functions: which TXT record is
// the SPF record (4.5), the record parser (4, 5, 6, 12), the macro expander (7), and the
// IP address and network matching the ip4/ip6/a/mx mechanisms need (5.6).
//
// check_host() (RFC 7208 4) evaluates a record with its DNS lookups through mail::Resolver,
// with the limits of 4.6.4, include, redirect and exp=; everything else here is pure.
//
// Ownership: value types; check_host keeps its state alive through the resolver's callbacks
// (the Resolver must outlive them, as its contract says). Thread-safety: pure functions;
// check_host runs on the resolver's thread and its `done` there. Nothing throws (malformed
// input is a Status: a record that does not parse is SPF's "permerror", RFC 7208 4.6).
#pragma once

#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::mail::spf {

// An IPv4 or IPv6 address as octets (4 or 16 of them).
struct Ip {
  bool v6 = false;
  std::array<std::uint8_t, 16> octets{};
  bool operator==(const Ip&) const = default;
};

// "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" (RFC 4291 2.2); nullopt for anything else.
CMAIL_EXPORT std::optional<Ip> parse_ip(std::string_view text);
// The first `bits` bits of a and b are equal (both the same family; bits within it).
CMAIL_EXPORT bool same_network(const Ip& a, const Ip& b, int bits);
// The address as the "i" macro writes it (RFC 7208 7.3): dotted quad, or 32 dot-separated
// nibbles for IPv6 (lower-case hex); and as "c" writes it: dotted quad or RFC 5952 text.
CMAIL_EXPORT std::string macro_ip(const Ip& ip);
CMAIL_EXPORT std::string readable_ip(const Ip& ip);

enum class Qualifier : char { Pass = '+', Fail = '-', SoftFail = '~', Neutral = '?' };

struct Mechanism {
  enum class Kind : std::uint8_t { All, Include, A, Mx, Ptr, Ip4, Ip6, Exists };
  Kind kind = Kind::All;
  Qualifier qualifier = Qualifier::Pass;
  std::string domain_spec;  // include, exists: required; a, mx, ptr: "" for the current domain
  Ip network;               // ip4, ip6
  int cidr4 = 32;           // ip4, a, mx (RFC 7208 5.6)
  int cidr6 = 128;          // ip6, a, mx
  bool operator==(const Mechanism&) const = default;
};

struct Record {
  std::vector<Mechanism> mechanisms;  // in order
  std::optional<std::string> redirect;     // redirect= (RFC 7208 6.1)
  std::optional<std::string> explanation;  // exp= (6.2)
};

// RFC 7208 4.5: a TXT record is an SPF record when it starts with "v=spf1" followed by a
// space or its end (case-insensitively).
CMAIL_EXPORT bool is_spf_record(std::string_view txt);

// Parses one SPF record (RFC 7208 12). InvalidArgument (permerror) for a record that does
// not start with the version, an unknown mechanism, a mechanism missing its required
// argument, a CIDR length out of range, a bad IP network, a redirect= or exp= given twice, a
// domain-spec or macro-string that is not well formed. Unknown modifiers are ignored (6).
CMAIL_EXPORT Result<Record> parse_record(std::string_view text);

// What the macros expand to (RFC 7208 7.2). `ip` is the client's address.
struct MacroContext {
  std::string sender;         // s: the MAIL FROM address (postmaster@helo when it is empty)
  std::string domain;         // d: the domain being checked now
  Ip ip;                      // i, c, v
  std::string helo;           // h
  std::string validated_ptr = "unknown";  // p (RFC 7208 7.3: "unknown" when not looked up)
  std::string receiver;       // r (exp only)
  std::int64_t timestamp = 0; // t (exp only)
};

// Expands a domain-spec (or, with `explanation`, an exp= text, where c, r and t are allowed)
// (RFC 7208 7.3, 7.4): letters, transformers (a count of labels kept from the right, "r" to
// reverse), delimiters, upper-case letters URL-encoded, "%%", "%_", "%-". A domain longer
// than 253 octets loses labels from the left until it fits (7.3). InvalidArgument for a
// malformed macro or a letter not allowed where it is.
CMAIL_EXPORT Result<std::string> expand(std::string_view macro_string, const MacroContext& ctx,
                                        bool explanation = false);

// RFC 7208 2.6.
enum class Answer : std::uint8_t { None, Neutral, Pass, Fail, SoftFail, TempError, PermError };
// As Received-SPF and Authentication-Results write them: "none", "neutral", "pass", "fail",
// "softfail", "temperror", "permerror".
CMAIL_EXPORT const char* to_string(Answer r);

struct Outcome {
  Answer result = Answer::None;
  std::string explanation;  // fail with exp=: the expanded explanation (RFC 7208 6.2)
  std::string problem;      // why, for logs: the DNS error, the record's flaw, the limit
};

// RFC 7208 4.6.4.
struct Limits {
  int dns_terms = 10;     // include, a, mx, ptr, exists, redirect across the whole evaluation
  int void_lookups = 2;   // lookups answered NXDOMAIN or with no records
  int mx_hosts = 10;      // MX hosts (and PTR names) looked up for one mechanism
};

// check_host(ip, domain, sender) (RFC 7208 4). `sender` is the MAIL FROM address, or
// "postmaster@" + the HELO name when MAIL FROM is empty (2.4); `helo` the HELO name for the
// "h" macro. `done` runs once; at once when no lookup is needed (a domain that is not one:
// none), else from a resolver callback.
CMAIL_EXPORT void check_host(Resolver& resolver, const Ip& ip, std::string_view domain, std::string_view sender,
                             std::string_view helo, std::function<void(Outcome)> done, Limits limits = {});

}  // namespace cmail::mail::spf
