// daemon/config.h: cmail's daemon configuration files, parsed strictly
// (docs/compatibility.md#configuration-files).
//
// The syntax is cmail's: one directive per line, the first word naming it and the rest its
// parameters; '#' anywhere starts a comment; blank lines are ignored. Unlike the original,
// directive names must match exactly, and every problem (unknown directive, bad value, missing
// argument, a second `database`) is reported as "FILE:LINE: message" and nothing starts.
//
// Thread-safety: pure functions.
#pragma once

#include <cmail/backends/auth_guard.h>
#include <cmail/mail/delivery.h>
#include <cmail/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::daemon::config {

// Directives every daemon has (docs/compatibility.md#config-common-directives).
struct Common {
  std::string database;
  int verbosity = 0;
  std::string logfile;
  std::string pidfile;
  std::string user;
  std::string group;
};

// One `bind` line of cmail-smtpd (docs/compatibility.md#smtp-listener-options).
struct SmtpdListener {
  std::string host;  // "*" = all IPv4 addresses, "::" = all IPv6 addresses
  std::uint16_t port = 0;
  std::string announce = "cmail-smtpd";
  // size=: the largest message; absent = the engine's default (50 MiB), 0 = no fixed limit.
  std::optional<std::uint64_t> size;
  std::string cert, key;
  bool tlsonly = false;    // implicit TLS (SMTPS)
  std::string ciphers;     // ignored (docs/compatibility.md#daemons-tls-options)
  bool auth = false;            // offer AUTH
  bool auth_tlsonly = false;    // only inside TLS
  bool auth_strict = false;     // MAIL needs AUTH (530)
  bool auth_private = false;    // "from remote" in Received
  std::optional<std::string> fixed_user;  // auth=fixed@user: pre-authenticated
  bool strict = false;          // RFC 5321 paths only (extension; cmail had no such option)
  // Extensions (not in the original): idle and data timeout in seconds (0 = RFC 5321 defaults)
  // and the most connections from one client address.
  std::uint32_t timeout = 0;
  std::uint32_t max_per_address = 50;
  // DATA and each BDAT chunk as a whole: the data timeout plus a second per this many octets
  // (absent: the engine's 500; 0: the data timeout alone).
  std::optional<std::uint32_t> min_data_rate;
  // dmarc=report|enforce (an extension): what this listener does with mail failing DMARC,
  // whatever the auth_policy table says for the recipients' domains (docs/auth.md#policy);
  // absent: the table decides.
  std::optional<bool> dmarc_enforce;
  int line = 0;  // where it was defined, for messages
};

struct Smtpd {
  Common common;
  std::vector<SmtpdListener> listeners;
  // `maxinflight OCTETS`: message data all SMTP sessions of the process hold at once (in memory
  // and in spool files) before new transactions get 452 4.3.1; 0 = no bound.
  std::uint64_t max_in_flight = 512ull * 1024 * 1024;
  // `authguard` (an extension, docs/logging.md#authentication-penalties); nullopt: not given,
  // the defaults.
  std::optional<backends::AuthGuardOptions> auth_guard;
  // `resolver HOST[:PORT]` (an extension, repeatable, as for cmail-dispatchd): the name servers
  // the intake checks ask, tried in order; none: the system's (/etc/resolv.conf).
  std::vector<std::string> resolvers;
  // `auth_checks on|off` (an extension, one line at most; default on): the sender checks of
  // mail from clients that did not authenticate, today SPF (RFC 7208) with its
  // Authentication-Results header (docs/smtp.md#spf-on-intake). Off: intake makes no DNS query.
  bool auth_checks = true;
};

// Parses the text of a config file; `name` is used in error messages.
Result<Smtpd> parse_smtpd(std::string_view text, const std::string& name);
// Reads and parses a file.
Result<Smtpd> load_smtpd(const std::string& path);

// cmail-dispatchd (docs/compatibility.md#dispatchd-configuration). Defaults fix the original's
// gaps: `announce` is the host name, `portprio` is "25" (opportunistic STARTTLS), `ratelimit`
// works (messages per minute per destination), `tls_trustfile` is used to verify certificates
// where `tls_verify` asks for it. Extensions: `resolver HOST[:PORT]` (repeatable),
// `maxretryinterval`, `maxage`, `maxconnections`, `maxperdestination`, `timeout`, `tls_verify`,
// `plaintext_auth`, `dnssec on|off` (trust the name servers' AD bit: DANE, docs/tls-policy.md),
// `mta_sts on|off` and its test-only `mta_sts_port` (docs/tls-policy.md).
struct Dispatchd {
  Common common;
  std::string announce;  // "" = the host name
  std::vector<mail::PortChoice> portprio = {{25, mail::TlsMode::Opportunistic}};
  std::uint32_t interval = 10;  // seconds between polls (cmail's own commits are noticed at once; other programs' wait for it)
  mail::RetryPolicy retry;  // retries, retryinterval, maxretryinterval, maxage
  std::uint32_t ratelimit = 0;
  std::uint32_t tls_padding = 0;  // accepted for compatibility, not used (docs/dispatchd.md)
  std::string tls_trustfile;      // "" = the system's CA bundle
  mail::TlsVerify tls_verify = mail::TlsVerify::Credentials;
  bool plaintext_auth = false;
  bool mta_sts = true;              // MTA-STS policies applied to MX delivery (RFC 8461)
  std::uint16_t mta_sts_port = 443; // the policy hosts' HTTPS port; another one is for tests only
  std::string bounce_from;
  std::vector<std::string> bounce_copy;
  std::string bind;
  std::vector<std::string> resolvers;
  bool dnssec = false;  // the resolvers validate DNSSEC: their AD bit counts (DANE)
  std::uint32_t max_connections = 50, max_per_destination = 4;
  std::uint32_t timeout = 0;  // seconds for every SMTP wait; 0 = RFC 5321 4.5.3.2
};

// `database_required` is false for `cmail serve --dispatchd-config`, which has its own database.
Result<Dispatchd> parse_dispatchd(std::string_view text, const std::string& name,
                                               bool database_required = true);
Result<Dispatchd> load_dispatchd(const std::string& path, bool database_required = true);

// One `bind` line of cmail-popd (docs/compatibility.md#pop3-listener-options).
struct PopdListener {
  std::string host;  // "*" = all IPv4 addresses, "::" = all IPv6 addresses
  std::uint16_t port = 0;
  std::string announce = "cmail-popd";
  std::string cert, key;  // both: STLS offered (or implicit TLS with tlsonly)
  bool tlsonly = false;     // implicit TLS (POP3S)
  bool tlsrequire = false;  // USER, PASS and AUTH only inside TLS
  std::string ciphers;      // accepted and ignored, as for smtpd
  // Extensions, as for smtpd: the idle timeout in seconds (0 = RFC 1939's 10 minutes) and
  // the most connections from one client address.
  std::uint32_t timeout = 0;
  std::uint32_t max_per_address = 50;
  int line = 0;
};

struct Popd {
  Common common;
  std::vector<PopdListener> listeners;
  std::optional<backends::AuthGuardOptions> auth_guard;  // as for Smtpd
  // `maxperuser N` (cmail-imapd only; 0: no limit): sessions one user may have at once in this
  // process. cmail-popd has no such line: its maildrop lock allows one session per user.
  std::uint32_t max_per_user = 0;
};

Result<Popd> parse_popd(std::string_view text, const std::string& name);
Result<Popd> load_popd(const std::string& path);

// cmail-imapd takes cmail-popd's syntax exactly (docs/imapd.md#configuration): the same common
// directives, `authguard`, and `bind` lines with the same options; announce defaults to
// "cmail-imapd", and timeout=0 means RFC 9051 5.4's 30 minutes; one more directive,
// `maxperuser N` (default kImapMaxPerUser, 0: no limit).
inline constexpr std::uint32_t kImapMaxPerUser = 32;
using ImapdListener = PopdListener;
using Imapd = Popd;
Result<Imapd> parse_imapd(std::string_view text, const std::string& name);
Result<Imapd> load_imapd(const std::string& path);

// The parameters of an `authguard` line (also `cmail serve --authguard`): `off`, or any of
// delay=MS maxdelay=MS ipfailures=N userfailures=N forget=SECONDS entries=N (0 failures: never
// refuse). Errors name the bad word, without a file or line.
Result<backends::AuthGuardOptions> parse_authguard(std::string_view params);

// A port number or service name ("smtp", "submission"); nullopt if neither.
std::optional<std::uint16_t> parse_port(std::string_view text);

}  // namespace cmail::daemon::config
