// daemon/imap_service.h: cmail-imapd's listeners on a Runtime, from cmail's config lines.
//
// Each listener serves imap::Server engines with StoreImapSession backends: IMAP with STARTTLS
// when the line has a certificate, or IMAPS (implicit TLS, RFC 8314) with tlsonly; tlsrequire
// keeps log-ins inside TLS (LOGINDISABLED before STARTTLS, RFC 9051 6.2.3). The engine's idle
// timeout is RFC 9051 5.4's 30 minutes unless the line sets timeout=, and every command must
// arrive whole within it (imap::Server::deadline()). Used by cmail-imapd and by `cmail serve`.
// Log-ins are counted in `guard` (null: none) and lines go to `log` with their level, as for
// add_pop3_listeners. A user may hold `max_per_user` sessions at once over all these listeners
// (0: no limit; backends::SessionLimit).
//
// Thread-safety: call on the Runtime's loop thread before run(). REQUIRES: the Store outlives
// the Runtime's connections.
#pragma once

#include "daemon/config.h"

#include <cmail/backends/auth_guard.h>
#include <cmail/log_sink.h>
#include <cmail/net/runtime.h>
#include <cmail/store/store.h>

#include <memory>
#include <string>
#include <vector>

namespace cmail::daemon {

// Adds every listener ("imap" or "imaps" in BoundListener::kind); fails (naming the config
// line) if a certificate cannot be loaded or an address cannot be bound.
Result<std::vector<net::BoundListener>> add_imap_listeners(
    net::Runtime& runtime, store::Store& store, const std::vector<config::ImapdListener>& listeners,
    const std::string& config_name, std::shared_ptr<backends::AuthGuard> guard, LogSink log,
    std::uint32_t max_per_user = config::kImapMaxPerUser);

}  // namespace cmail::daemon
