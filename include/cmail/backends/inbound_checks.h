// cmail/backends/inbound_checks.h: the sender checks of one incoming message: SPF (RFC 7208)
// of MAIL FROM or HELO, DKIM (RFC 6376, RFC 8463) of every signature, DMARC (RFC 7489) of the
// From domain, written as one Authentication-Results field (RFC 8601).
//
// One object per SMTP transaction: start() at MAIL FROM begins SPF; feed() takes the message
// as it arrives (before anything is added to it), and once its header is in, the DKIM key
// records and the DMARC record are asked for while the body streams by; finish() at the end of
// the data calls back once every answer is in, or once the time allowed for the lookups has
// passed (then what is missing is temperror). Nothing waits: all DNS goes through the
// mail::Resolver, time-outs through Executor::post_after.
//
// Ownership: the Resolver and Executor must outlive the object; destroying it drops answers
// still to come (their callbacks then do nothing). Thread-safety: used on the connection's
// thread, which must be the resolver's.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/dkim.h>
#include <cmail/mail/dmarc.h>
#include <cmail/mail/resolver.h>
#include <cmail/mail/spf.h>
#include <cmail/proto/transport.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cmail::backends {

struct InboundCheckOptions {
  mail::Resolver* resolver = nullptr;  // required
  std::string hostname = "localhost";  // the authserv-id (RFC 8601 2.5)
  // How long each lookup may take: SPF counted from MAIL FROM, DKIM and DMARC from the end of
  // the header (RFC 7208 4.6.4 allows giving up after 20 seconds).
  std::chrono::milliseconds timeout{20000};
  // The organizational domains for DMARC; null: the system's list (kPublicSuffixFile, read
  // once per process; without it every domain's last two labels).
  const mail::dmarc::PublicSuffixList* psl = nullptr;
  // For pct= sampling (RFC 7489 6.6.4): a number 0-99; null: random.
  std::function<int()> roll;
};

// What the checks found.
struct InboundResult {
  std::optional<mail::spf::Outcome> spf;
  std::string spf_property;  // "smtp.mailfrom" or "smtp.helo"
  std::string spf_identity;
  std::vector<mail::dkim::Verification> dkim;
  std::string from_domain;   // RFC5322.From's, when there is exactly one From address
  enum class Dmarc : std::uint8_t { None, Pass, Fail, TempError, PermError } dmarc = Dmarc::None;
  mail::dmarc::Policy policy = mail::dmarc::Policy::None;  // the domain's p= (or sp=) when it fails
  bool policy_applies = false;                             // after pct=
  // The Authentication-Results field, CRLF-terminated.
  std::string header(std::string_view authserv_id) const;
  // "spf=pass dkim=pass dmarc=none" for the message log line.
  std::string summary() const;
};

CMAIL_EXPORT const char* to_string(InboundResult::Dmarc d);

class CMAIL_EXPORT InboundChecks {
 public:
  InboundChecks(InboundCheckOptions options, proto::Executor executor);
  ~InboundChecks();
  InboundChecks(const InboundChecks&) = delete;
  InboundChecks& operator=(const InboundChecks&) = delete;

  // MAIL FROM: SPF of `from` (the HELO name for the null reverse-path, RFC 7208 2.4) for the
  // client at `client_ip`. Without a parseable IP nothing is checked.
  void start(std::string_view client_ip, std::string_view helo, const std::string& from_address,
             const std::string& from_domain);
  void feed(std::string_view octets);
  // The end of the data: `done` runs once everything is answered or timed out (at once, from
  // within finish(), when nothing is outstanding).
  void finish(std::function<void()> done);
  InboundResult result() const;

 private:
  struct State;
  void header_complete();
  static void ready(State& s);  // calls `done` when the end of data waits and all is in
  std::shared_ptr<State> state_;
};

// The Public Suffix List every InboundChecks without one of its own uses.
CMAIL_EXPORT const mail::dmarc::PublicSuffixList& system_public_suffixes();

}  // namespace cmail::backends
