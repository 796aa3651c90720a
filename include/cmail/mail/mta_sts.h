// cmail/mail/mta_sts.h: SMTP MTA Strict Transport Security (RFC 8461) as plain functions.
//
// A domain announces a policy with a TXT record at _mta-sts.<domain> ("v=STSv1; id=..."); the
// policy itself is a small text file at https://mta-sts.<domain>/.well-known/mta-sts.txt saying
// which MX hosts are genuine and whether senders must refuse the others (mode enforce), only
// report them (testing), or ignore the policy (none), and for how long it may be cached.
// This header holds the parts without I/O:
//   select_txt()          the one STSv1 record among a name's TXT records (RFC 8461 3.1)
//   parse_policy()        the policy file (RFC 8461 3.2)
//   check_response()      the HTTPS response that carried it (RFC 8461 3.3)
//   mx_matches()          an MX host against a policy's mx patterns (RFC 8461 4.1)
//   next_step()           with a cached policy and the TXT answer, whether to fetch (RFC 8461 5.1)
//   apply()               a policy on the MX hosts of a delivery (RFC 8461 5)
// The runtime fetches and caches policies (cmail/net/mta_sts.h); the dispatcher applies them.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cmail/export.h>
#include <cmail/http/client.h>
#include <cmail/mail/delivery.h>
#include <cmail/mail/resolver.h>
#include <cmail/mail/route.h>
#include <cmail/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::mail::mta_sts {

inline constexpr std::string_view kWellKnown = "/.well-known/mta-sts.txt";  // RFC 8461 3.2
inline constexpr std::int64_t kMaxAge = 31557600;                           // RFC 8461 3.2
inline constexpr std::size_t kMaxPolicySize = 64 * 1024;                    // RFC 8461 3.3

enum class Mode { Enforce, Testing, None };
CMAIL_EXPORT const char* to_string(Mode m);

struct Policy {
  Mode mode = Mode::None;
  std::vector<std::string> mx;  // patterns, lower case: "mail.example.com", "*.example.net"
  std::int64_t max_age = 0;     // seconds, at most kMaxAge
  bool operator==(const Policy&) const = default;
};

// The name the TXT record is published at, and the policy host (RFC 8461 3.1, 3.2).
CMAIL_EXPORT std::string txt_name(std::string_view domain);
CMAIL_EXPORT std::string policy_host(std::string_view domain);

// One TXT record: its id when it is a valid STSv1 record (RFC 8461 3.1), else nullopt.
CMAIL_EXPORT std::optional<std::string> parse_txt_record(std::string_view record);
// The id of a name's policy from its TXT records: records not starting with "v=STSv1;" are
// discarded, and unless exactly one remains and it is valid there is no policy (RFC 8461 3.1).
CMAIL_EXPORT std::optional<std::string> select_txt(const std::vector<std::string>& records);

// The policy file (RFC 8461 3.2): CRLF- or LF-separated "key: value" lines; version STSv1 and
// mode and max_age are required, mx at least once unless the mode is none; the first of a
// repeated key counts (mx excepted); unknown keys are ignored. max_age above kMaxAge is
// capped. An error names the first problem.
CMAIL_EXPORT Result<Policy> parse_policy(std::string_view text);

// The response of the policy fetch: 200 only (no redirect is followed), media type
// text/plain, then the policy (RFC 8461 3.3).
CMAIL_EXPORT Result<Policy> check_response(const http::Response& response);

// RFC 8461 4.1: a pattern is a host name, or "*." and a name matching exactly one more label
// on the left ("*.example.com" matches "mx.example.com", not "example.com" nor "a.b.example.com").
// Case-insensitive; a trailing dot on either side is ignored.
CMAIL_EXPORT bool mx_matches(std::string_view pattern, std::string_view host);
CMAIL_EXPORT bool host_allowed(const Policy& policy, std::string_view host);

// A policy as cached: the TXT id it was fetched under, and until when it is valid.
struct Cached {
  std::string id;
  Policy policy;
  std::int64_t fetched = 0;  // Unix time
  std::int64_t expires = 0;  // fetched + max_age
  bool valid(std::int64_t now) const { return now < expires; }
};

// RFC 8461 5.1, 3.1: what to do once the TXT answer is in.
enum class Step {
  UseCached,  // the cached policy is valid and its id is the published one (or none is published)
  Fetch,      // fetch the policy; if that fails, the cached one while valid, else no policy
  NoPolicy,   // deliver as if the domain had no policy
};
CMAIL_EXPORT Step next_step(const std::optional<Cached>& cached, const TxtResult& txt, std::int64_t now);

// What a policy does to the hosts of a delivery (RFC 8461 5).
struct Applied {
  std::variant<HostPlan, Failure> plan;  // the hosts to try, or a temporary failure
  bool verify = false;                   // enforce: TLS with a valid certificate is required
  std::vector<std::string> notes;        // testing: what enforce would have refused, for the log
};
// enforce: only the hosts matching the policy are kept, and they must offer TLS with a
// certificate valid for their name; none matching is a temporary failure (RFC 8461 5: never a
// permanent one before the policy was looked up again). testing: every host, a note for each
// that does not match. none: the plan as it is.
CMAIL_EXPORT Applied apply(const Policy& policy, std::string_view domain, HostPlan plan);

// The faillog reason when a host of an enforced policy failed in TLS: "MTA-STS: certificate not
// valid for HOST (...)" for a handshake that failed (the runtime's "TLS: ..." reasons: the
// certificate check, or anything else in it), "MTA-STS: HOST does not offer STARTTLS (...)"
// when STARTTLS was missing or refused (RFC 8461 4.2, 5). nullopt for other failures.
CMAIL_EXPORT std::optional<std::string> enforced_failure(std::string_view host, std::string_view reason);

}  // namespace cmail::mail::mta_sts
