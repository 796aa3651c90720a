// cmail/net/dispatcher.h: outbound delivery on a Runtime: queue -> DNS -> SMTP client -> remote.
//
// The Dispatcher leases due queue entries (cmail/store/queue.h), groups them by destination (the
// recipient's domain, or a handoff remote) and by message, finds the servers of a destination
// (MX records in preference order with a random choice among equals, the implicit MX when
// there are none, a null MX or NXDOMAIN failing at once; RFC 5321 5.1, RFC 7505), and sends each
// message once per destination with smtp::Client over Runtime::connect, trying hosts and the
// `portprio` ports in order. It keeps several destinations and connections going at once on the
// one loop (limits overall and per destination, an optional rate per destination).
//
// Results are settled per recipient in one commit: 2xx removes the entry; 4xx, connection and
// DNS trouble record a faillog row and a next attempt at growing intervals; 5xx records a
// permanent failure. Entries that failed permanently, used up their retries or grew too old are
// returned to their senders as RFC 3464 reports (one per message and sender, never for a
// bounce; a bounce for a local address is stored locally through the same routing as inbound
// mail), replacing the entries in the same transaction.
//
// Leases make this safe with several dispatchers and across crashes: an entry is sent by the
// process holding its lease, leases are renewed while work is in flight, and leases of a
// dispatcher on this host that died (cmail/store/process.h) are released at once.
//
// The decisions are plain functions that tests call directly: route planning (which lookups,
// then the candidates or a failure) in cmail/mail/route.h, per-recipient outcomes in
// cmail/mail/outcome.h, transactions from leased entries in cmail/net/delivery_plan.h, bounces
// and success reports in cmail/net/bounce_plan.h. This class is the event-loop part that runs
// them: leasing, timers, connections, renewals, the notify watch.
//
// New entries are noticed through the queue's notify file (inotify, Queue::notify_path()) and
// a timer for the next due entry, with a poll every `interval` as the fallback (and the only way
// to find rows that other programs insert, whose commits touch no notify file); run_now() asks
// for a run at once (SIGHUP, cmail-admin queue).
//
// Thread-safety: create, use and destroy on the Runtime's loop thread. Ownership: REQUIRES the
// Runtime, the Store and the Resolver to outlive the Dispatcher. Work still in flight when it
// is destroyed (or when the Runtime shuts down) keeps its leases; a restart releases them.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/delivery.h>
#include <cmail/mail/resolver.h>
#include <cmail/mail/route.h>
#include <cmail/status.h>
#include <cmail/store/store.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::net {

class Runtime;

struct DispatcherOptions {
  std::string announce = "localhost";  // EHLO name, Reporting-MTA, bounce Message-IDs
  std::vector<mail::PortChoice> portprio = {{25, mail::TlsMode::Opportunistic}};
  mail::RetryPolicy retry;
  std::chrono::milliseconds interval{std::chrono::seconds(10)};  // the slowest poll
  std::string bounce_from;               // From: of bounces; "" = MAILER-DAEMON@announce
  std::vector<std::string> bounce_copy;  // also receive every bounce
  std::string bind;                      // local address of outgoing connections ("" = any)
  std::uint32_t ratelimit = 0;           // messages per minute per destination; 0 = no limit
  std::size_t max_connections = 50;      // at once, overall
  std::size_t max_per_destination = 4;   // at once, per destination
  std::size_t max_messages_per_connection = 1000;
  std::size_t max_recipients = 100;      // per transaction (RFC 5321 4.5.3.1.8)
  mail::TlsVerify verify = mail::TlsVerify::Credentials;
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";  // `tls_trustfile`
  bool plaintext_auth = false;  // send handoff credentials without TLS
  // MTA-STS (RFC 8461, docs/tls-policy.md#mta-sts): recipient domains' policies choose MX hosts
  // and require verified TLS in enforce mode (cmail/net/mta_sts.h). `mta_sts on|off`.
  bool mta_sts = true;
  std::uint16_t mta_sts_port = 443;  // the policy hosts' HTTPS port: another is for tests only
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
  // 0: the RFC 5321 4.5.3.2 timeouts for every wait; else this one for all (tests, `timeout`).
  std::chrono::milliseconds reply_timeout{0};
  std::int64_t lease_seconds = 900;  // renewed every third of it while work is in flight
  std::string owner;  // lease owner; "" = process_token("dispatchd")
  std::function<void(int level, std::string_view line)> log;  // 0 errors, 1 deliveries, 3 debug
};

struct DispatcherStats {
  std::uint64_t delivered = 0;  // recipients accepted by a remote
  std::uint64_t deferred = 0;   // temporary failures recorded
  std::uint64_t failed = 0;     // permanent failures recorded
  std::uint64_t bounces = 0;    // bounce messages created
  std::uint64_t connections = 0;
};

// MX ordering lives with the rest of route planning (cmail/mail/route.h); kept here by name.
using mail::order_mx;

// This host's name (gethostname), for EHLO when nothing else is configured.
CMAIL_EXPORT std::string host_name();

class CMAIL_EXPORT Dispatcher {
 public:
  static Result<std::unique_ptr<Dispatcher>> create(net::Runtime& runtime, store::Store& store,
                                                    mail::Resolver& resolver, DispatcherOptions options);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Daemon mode: releases dead dispatchers' leases, runs now, then whenever entries become due.
  void start();
  // A run at once (SIGHUP).
  void run_now();

  // One-shot modes (docs/compatibility.md#dispatchd-one-shot-modes), each calling done when its
  // work is settled: every due entry for `domain` (MX delivery, compared case-insensitively),
  // every due entry whose remote is `remote` (exactly), or one bounce run. No bounces are made
  // by the first two.
  void deliver_domain(std::string domain, std::function<void(Status)> done);
  void deliver_remote(std::string remote, std::function<void(Status)> done);
  void generate_bounces(std::function<void(Status)> done);

  DispatcherStats stats() const;
  const std::string& owner() const;

  struct Core;  // the loop-side state, private to libcmail/net/dispatcher.cc

 private:
  explicit Dispatcher(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace cmail::net
