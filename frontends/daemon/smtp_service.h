// daemon/smtp_service.h: cmail-smtpd's listeners on a Runtime, from cmail's config lines.
//
// Each listener serves smtp::Server engines with StoreSmtpSession backends: inbound mail for
// local addresses from anyone, submission for authenticated users, as the master database
// routes it. Used by cmail-smtpd and by `cmail serve`. Every listener's sessions count failed
// AUTH in `guard` (null: none), which `cmail serve` shares with its POP3 listeners.
// `log` gets the sessions' and connections' lines with their level (docs/logging.md).
//
// Thread-safety: call on the Runtime's loop thread before run(). REQUIRES: the Store outlives
// the Runtime's connections.
#pragma once

#include "daemon/config.h"

#include <cmail/backends/auth_guard.h>
#include <cmail/mail/resolver.h>
#include <cmail/net/runtime.h>
#include <cmail/store/store.h>

#include <memory>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::daemon {

// Adds every listener; fails (naming the config line) if a certificate cannot be loaded or an
// address cannot be bound. All of them share one budget of `max_in_flight` octets of message
// data (0: no bound). With a `resolver` (on the Runtime's loop; it must outlive the sessions)
// every listener's sessions check SPF of unauthenticated mail and add Authentication-Results
// (docs/smtp.md#spf-on-intake); null: no checks.
Result<std::vector<net::BoundListener>> add_smtp_listeners(
    net::Runtime& runtime, store::Store& store, const std::vector<config::SmtpdListener>& listeners,
    const std::string& config_name, std::shared_ptr<backends::AuthGuard> guard,
    LogSink log, std::uint64_t max_in_flight, mail::Resolver* resolver);

}  // namespace cmail::daemon
