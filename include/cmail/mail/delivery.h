// cmail/mail/delivery.h: outbound delivery policy as plain functions, with no I/O: handoff remote
// specifications (docs/compatibility.md#dispatchd-handoff-specs), port and TLS priorities
// (`portprio`, docs/compatibility.md#dispatchd-portprio), the retry schedule,
// what a failure record in faillog says, and delivery status notifications (RFC 3464) for
// bounces. The dispatcher (cmail/net/dispatcher.h) applies them; tests call them directly.
//
// Differences from the original dispatchd, each deliberate
// (docs/compatibility.md#delivery-cmail-dispatchd):
//  - a `portprio` entry without suffix means opportunistic STARTTLS (RFC 7435), not plaintext;
//    `@plain` asks for no TLS at all;
//  - a handoff spec may name an IPv6 literal in brackets ("[2001:db8::1]:25"); a spec that does
//    not parse is a permanent failure with a clear reason, never an entry stuck in the queue;
//  - retries come at growing intervals (retryinterval, doubled after each failure, at most
//    max_interval) and stop at `retries` failures or `max_age` seconds in the queue;
//  - bounces are RFC 3464 reports, one per message and sender, never for a bounce.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/sasl.h>
#include <cmail/smtp/syntax.h>
#include <cmail/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::mail {

enum class TlsMode {
  Opportunistic,  // STARTTLS when offered, plaintext otherwise (no suffix)
  StartTls,       // STARTTLS required ("@starttls")
  Implicit,       // TLS from the first byte, e.g. port 465 ("@tls", RFC 8314)
  None,           // never TLS ("@plain")
};

struct PortChoice {
  std::uint16_t port = 25;
  TlsMode tls = TlsMode::Opportunistic;
  bool operator==(const PortChoice&) const = default;
};

// When the certificate of a server must be valid for its name (`tls_verify`).
enum class TlsVerify {
  Never,        // opportunistic only (RFC 7435)
  Credentials,  // handoff remotes given credentials (the default)
  Handoff,      // every handoff remote
  Always,       // every connection, MX delivery too (TLS then becomes required)
};
CMAIL_EXPORT std::optional<TlsVerify> parse_tls_verify(std::string_view text);

// "465@tls 25@starttls 25" -> ports in order. Suffixes are case-insensitive. An unknown suffix
// or a bad port is an error naming the entry (the original ignored both silently).
CMAIL_EXPORT Result<std::vector<PortChoice>> parse_portprio(std::string_view text);

// A handoff remote: "[user:password@]host[:port[/tls|/starttls]]"
// (docs/compatibility.md#dispatchd-handoff-specs).
struct RemoteSpec {
  std::optional<sasl::Credentials> credentials;
  std::string host;                 // a name or a numeric address (brackets removed)
  std::optional<PortChoice> port;   // nullopt: the portprio list
};

// Parses a spec. Credentials are split at the last '@' before the host part and at the first
// ':' inside them, so passwords may contain ':' and '@'. A port is decimal; "/tls" and
// "/starttls" (any case) select the TLS mode, anything else after the port is an error.
// Error messages name the spec with its password hidden (redact_remote).
CMAIL_EXPORT Result<RemoteSpec> parse_remote(std::string_view spec);
// The spec as logs and bounces may show it: "user:***@host:port"; nothing secret in logs.
CMAIL_EXPORT std::string redact_remote(std::string_view spec);

struct RetryPolicy {
  std::int64_t interval = 3600;       // `retryinterval`: the first wait after a failure
  std::int64_t max_interval = 14400;  // the longest wait between attempts
  std::int64_t retries = 5;           // `retries`: failures before the mail is returned
  std::int64_t max_age = 5 * 86400;   // seconds in the queue before the mail is returned
};

// When to try again after the `failures`-th failure (1 for the first), from `now`.
CMAIL_EXPORT std::int64_t next_attempt(const RetryPolicy& p, std::int64_t failures, std::int64_t now);
// Whether a temporarily failing entry is given up: retries used up or too old.
CMAIL_EXPORT bool given_up(const RetryPolicy& p, std::int64_t failures, std::int64_t submission,
                           std::int64_t now);

// What faillog.fail_message holds. A remote reply keeps cmail's form, the reply line first
// ("550 5.1.1 No such user"), followed by " (from HOST)" naming the server that said it. A
// failure found here (DNS, connection, a check before sending) is an enhanced status code and
// a reason: "5.1.2 example.invalid does not exist". Lines written by the original dispatchd
// ("Failed to reach any MX") are read as they are.
CMAIL_EXPORT std::string failure_from_reply(const smtp::Reply& reply, std::string_view host);
CMAIL_EXPORT std::string failure_local(smtp::EnhancedCode status, std::string_view reason);

// A failure as the queue records it: the faillog text (one of the two forms above) and whether
// it is permanent (a 5xx reply, or a failure found here that no retry can mend).
struct Failure {
  std::string record;
  bool fatal = false;
  bool operator==(const Failure&) const = default;
};

struct ParsedFailure {
  smtp::EnhancedCode status;             // RFC 3463
  std::optional<std::string> diagnostic;  // the remote reply line ("550 5.1.1 ...")
  std::optional<std::string> remote;      // the host that replied
  std::string text;                       // for people
};
// `fatal` chooses 5.0.0 or 4.0.0 when the text carries no code.
CMAIL_EXPORT ParsedFailure parse_failure(std::string_view message, bool fatal);

// One recipient a bounce reports on.
struct BouncedRecipient {
  std::string address;                // the envelope recipient (Final-Recipient)
  std::optional<std::string> orcpt;   // DSN ORCPT as given ("rfc822;user@example.org")
  // RFC 3464 2.3.3: "failed"; "relayed" (handed to a server that does not offer DSN, for a
  // sender who asked for NOTIFY=SUCCESS, RFC 3461 5.2.2); "delivered" (stored in a local
  // mailbox, RFC 3461 6.2.2). One report holds one kind.
  std::string action = "failed";
  ParsedFailure last;                 // the last attempt's failure, or the relay's reply
  bool expired = false;               // gave up after temporary failures (RFC 3463 4.4.7)
  std::int64_t last_attempt = 0;      // Unix time
  std::int64_t attempts = 0;
};

struct Bounce {
  std::string reporting_mta;          // `announce`
  std::string from;                   // `bounce_from`; empty: MAILER-DAEMON@reporting_mta
  std::string to;                     // the original envelope sender
  std::string queue_id;
  std::int64_t arrival = 0;           // when the original was queued
  std::optional<std::string> envid;   // RFC 3461 ENVID
  bool return_full = false;           // RFC 3461 RET=FULL: the whole message, else headers
  std::vector<BouncedRecipient> recipients;
  std::int64_t now = 0;
  std::string message_id;             // unique left part; "@reporting_mta" is added
};

// The bounce message (RFC 3464 multipart/report, RFC 6522): a text part for people, a
// message/delivery-status part, and the original headers (text/rfc822-headers) or, with
// RET=FULL and up to max_return octets, the whole original (message/rfc822). A report of
// "relayed" recipients is a success report (headers only: nothing is returned).
CMAIL_EXPORT std::string compose_bounce(const Bounce& b, std::string_view original,
                                        std::size_t max_return = 10 * 1024 * 1024);

// Whether the sender asked not to be told of this failure (RFC 3461 4.1: NOTIFY without
// FAILURE). A missing NOTIFY means failures are reported.
CMAIL_EXPORT bool wants_failure_report(const std::optional<std::string>& notify);
// Whether the sender asked to be told of success (NOTIFY containing SUCCESS); never by default.
CMAIL_EXPORT bool wants_success_report(const std::optional<std::string>& notify);

// The domain part of an envelope recipient (after the last '@'), in lower case; "" if none.
CMAIL_EXPORT std::string recipient_domain(std::string_view address);

}  // namespace cmail::mail
