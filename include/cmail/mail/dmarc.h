// cmail/mail/dmarc.h: DMARC (RFC 7489) as pure functions: the policy record parser (6.3,
// 6.6.3), the organizational domain through the Public Suffix List (3.2), identifier alignment
// (3.1) and the evaluation of a message's SPF and DKIM results against a policy (6.6).
//
// The record comes from a TXT lookup of "_dmarc.<domain>" through mail::Resolver (the
// organizational domain's when the From domain has none); the list from Debian's
// publicsuffix package (kPublicSuffixFile).
//
// Ownership: value types. Thread-safety: pure functions; a PublicSuffixList is immutable after
// it is made, and may be shared by threads.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace cmail::mail::dmarc {

enum class Policy : std::uint8_t { None, Quarantine, Reject };
CMAIL_EXPORT const char* to_string(Policy p);  // "none", "quarantine", "reject"

struct Record {
  Policy policy = Policy::None;               // p=
  std::optional<Policy> subdomain_policy;     // sp= (absent: p= applies)
  bool strict_dkim = false;                   // adkim=s
  bool strict_spf = false;                    // aspf=s
  int percent = 100;                          // pct=
  std::vector<std::string> aggregate_uris;    // rua=
  std::vector<std::string> failure_uris;      // ruf=
  std::string failure_options = "0";          // fo=
  std::uint32_t interval = 86400;             // ri=
};

// RFC 7489 6.6.3: a TXT record is a DMARC record when it starts with "v=DMARC1" (then ";",
// white space or its end).
CMAIL_EXPORT bool is_dmarc_record(std::string_view txt);
// RFC 7489 6.3, 6.6.3: v=DMARC1 first; p= required, except that a record with a valid rua= but
// no valid p= is p=none; a known tag with a bad value is ignored (its default stands).
// InvalidArgument for what is not a DMARC record at all.
CMAIL_EXPORT Result<Record> parse_record(std::string_view text);

constexpr const char* kPublicSuffixFile = "/usr/share/publicsuffix/public_suffix_list.dat";

// The rules of publicsuffix.org's list (normal, wildcard "*.", exception "!"), labels in
// A-label form (rules with other characters are converted with Punycode, RFC 3492), so that
// mail's ASCII domain names match them.
class CMAIL_EXPORT PublicSuffixList {
 public:
  // From the list's text (comments "//", one rule per line; both ICANN and private sections).
  static PublicSuffixList parse(std::string_view text);
  // From a file (kPublicSuffixFile by default); IoError when it cannot be read.
  static Result<PublicSuffixList> load(const std::string& path = kPublicSuffixFile);

  // The public suffix of `domain` (the longest rule that matches; the implicit "*" when none
  // does), lower-cased.
  std::string public_suffix(std::string_view domain) const;
  // RFC 7489 3.2: the public suffix and one more label; the domain itself when it is a public
  // suffix.
  std::string organizational_domain(std::string_view domain) const;
  std::size_t size() const { return normal_.size() + wildcard_.size() + exception_.size(); }

 private:
  // Rule names: "a.b" for "a.b", "b" for "*.b", "a.b" for "!a.b".
  std::unordered_set<std::string> normal_, wildcard_, exception_;
};

// RFC 3492: the A-label ("xn--" and Punycode) of a UTF-8 label; the label itself when it is
// ASCII; nullopt for bad UTF-8.
CMAIL_EXPORT std::optional<std::string> a_label(std::string_view utf8_label);

// RFC 7489 3.1: `a` (DKIM d=, or the SPF-checked domain) is aligned with the From domain:
// equal (strict) or of the same organizational domain (relaxed); without regard to case.
CMAIL_EXPORT bool aligned(std::string_view a, std::string_view from, bool strict, const PublicSuffixList& psl);

// What a receiver found, for the evaluation.
struct Evidence {
  std::string from_domain;                 // RFC5322.From's domain
  bool spf_pass = false;                   // SPF said pass for...
  std::string spf_domain;                  // ...this domain (MAIL FROM's, or HELO's)
  std::vector<std::string> dkim_pass;      // d= of every signature that verified
};

struct Outcome {
  bool pass = false;                       // DMARC pass: an aligned SPF or DKIM pass
  bool spf_aligned = false;
  bool dkim_aligned = false;
  Policy policy = Policy::None;            // to apply when it fails (p=, or sp= for subdomains)
  // The policy applies to this message after pct= (the caller's roll of 0-99 below pct).
  bool applies = true;
};

// RFC 7489 6.6: `record` found at `record_domain` (the From domain, or its organizational
// domain); `roll` is a uniform number 0-99 for pct= sampling (6.6.4).
CMAIL_EXPORT Outcome evaluate(const Record& record, std::string_view record_domain, const Evidence& e,
                              const PublicSuffixList& psl, int roll = 0);


// RFC 7489 6.6.3: the policy record of a From domain, looked up through a Resolver.
struct Discovery {
  enum class Kind : std::uint8_t { Found, None, TempError };
  Kind kind = Kind::None;
  Record record;            // Found
  std::string domain;       // Found: where ("example.org" of "_dmarc.example.org")
  std::string error;        // TempError: the DNS failure
};

// Asks "_dmarc.<from_domain>", then, when that has no DMARC record, "_dmarc.<organizational
// domain>"; several DMARC records at the name that answered, or none at either, is None.
// `done` runs once, on the resolver's thread. The Resolver and `psl` must outlive it.
CMAIL_EXPORT void discover(Resolver& resolver, const PublicSuffixList& psl, std::string from_domain,
                           std::function<void(Discovery)> done);

}  // namespace cmail::mail::dmarc
